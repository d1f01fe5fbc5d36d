"""Read a GrowthBook payload file (JSON, or xpstream YAML experiments) into a validated payload dict.

Used by `xp assign eval --features` and by the assignment service's static source
(``XP_SERVICE_FEATURES_FILE``); every problem is one :class:`~xpcore.errors.ValidationError` naming
the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from xpcore.errors import ValidationError

__all__ = ["json_error", "read_payload_file"]


def json_error(where: str, error: json.JSONDecodeError) -> ValidationError:
    """A JSON syntax error as one line naming where it was and the line and column."""
    return ValidationError(f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}")


def read_payload_file(path: Path) -> dict[str, Any]:
    """Read a GrowthBook payload file; every problem is one ValidationError naming the file."""
    if path.suffix.lower() in (".yaml", ".yml"):
        from assignment.authoring import load_payload_file

        return load_payload_file(path)  # YAML experiments: compiled, running ones only
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError(f"{path}: cannot read features file: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ValidationError(f"{path}: features file is not UTF-8 text") from error
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise json_error(str(path), error) from error
    from assignment import validate_payload

    try:
        validate_payload(payload)
    except ValidationError as error:
        raise ValidationError(f"{path}: {error}") from error
    return cast(dict[str, Any], payload)

"""Reading an experiments file: YAML or JSON text → a checked :class:`AuthoredRegistry` (I/O here only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assignment.authoring.authored import AuthoredRegistry
from assignment.authoring.growthbook import parse_growthbook_payload
from assignment.authoring.yaml_experiments import parse_yaml_experiments
from assignment.registry import RegistrySnapshot
from xpcore.errors import ValidationError

__all__ = [
    "load_payload_file",
    "load_registry_file",
    "load_snapshot",
    "parse_registry_document",
    "parse_registry_text",
]


def parse_registry_document(document: Any, source: str) -> AuthoredRegistry:
    """A parsed YAML/JSON document → entries; ``source`` names the file in error messages."""
    if not isinstance(document, dict):
        raise ValidationError(
            f"{source}: must be a mapping with `experiments:` or a GrowthBook `features:` payload"
        )
    if "features" in document:
        if "experiments" in document:
            raise ValidationError(
                f"{source}: use either `experiments:` (YAML) or `features:` (GrowthBook), not both"
            )
        return parse_growthbook_payload(document, source)
    return parse_yaml_experiments(document, source)


def parse_registry_text(text: str, source: str) -> AuthoredRegistry:
    """YAML or JSON text → entries (JSON is YAML, but JSON errors are reported as JSON errors)."""
    import yaml

    stripped = text.lstrip()
    if stripped.startswith("{") and source.endswith(".json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(f"{source}: invalid JSON at line {error.lineno}: {error.msg}") from None
    else:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or "cannot parse"
            raise ValidationError(f"{source}: invalid YAML{line}: {problem}") from None
    return parse_registry_document(document, source)


def load_registry_file(path: Path) -> AuthoredRegistry:
    """Read and validate an experiments YAML or a GrowthBook payload file (error messages name the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text") from None
    authored = parse_registry_text(text, path.name)
    from assignment.compiled import validate_payload

    try:
        validate_payload(authored.snapshot().payload())
    except ValidationError as error:
        raise ValidationError(f"{path.name}: {error}") from None
    return authored


def load_payload_file(path: Path) -> dict[str, Any]:
    """The GrowthBook payload a YAML or payload file serves (running experiments only), for
    ``xp assign eval`` and tests."""
    return load_registry_file(path).snapshot().payload()


def load_snapshot(path: Path) -> RegistrySnapshot:
    """The registry snapshot a file alone would make (for loadgen and the stream's file mode)."""
    return load_registry_file(path).snapshot()

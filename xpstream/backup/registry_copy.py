"""The registry part of a backup: ``xp.registry`` as JSON lines, every byte kept (base64).

Records are signed (header ``xp-signature``, docs/decisions/0044); keeping key, value and headers
verbatim keeps the signatures valid, so readers of the restored topic verify them with the same keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from assignment.registry_topic import RawRegistryMessage
from xpstream.backup.manifest import BackupError

__all__ = ["read_records_file", "write_records_file"]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _bytes(text: Any, where: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise BackupError(f"{where}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BackupError(f"{where}: not base64") from None


def write_records_file(messages: list[RawRegistryMessage], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for m in messages:
            line = {
                "partition": m.partition,
                "offset": m.offset,
                "timestamp_ms": m.timestamp_ms,
                "key": _b64(m.key),
                "value": _b64(m.value),
                "headers": [[name, _b64(value)] for name, value in m.headers],
            }
            out.write(json.dumps(line, sort_keys=True) + "\n")


def read_records_file(path: Path) -> list[RawRegistryMessage]:
    messages = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            where = f"{path.name} line {number}"
            try:
                item = json.loads(line)
                messages.append(
                    RawRegistryMessage(
                        int(item["partition"]),
                        int(item["offset"]),
                        None if item["timestamp_ms"] is None else int(item["timestamp_ms"]),
                        _bytes(item["key"], where),
                        _bytes(item["value"], where),
                        tuple((str(name), _bytes(value, where)) for name, value in item["headers"]),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise BackupError(f"{where}: malformed registry record ({error})") from None
    return messages

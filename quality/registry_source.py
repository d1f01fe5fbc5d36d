"""Where the quality job learns which experiments, variations and event names exist.

In order: ``XP_QUALITY_REGISTRY_FILE`` (a YAML experiments file, offline runs); the registry topic
``xp.registry``; when Kafka cannot be read, the registry's audit history in the ``xp.registry`` table
(folded the same way), with a note in the run, so a Kafka outage does not stop the quality job.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from xpcore.errors import XpError

if TYPE_CHECKING:
    from assignment.registry import RegistrySnapshot
    from quality.settings import QualitySettings
    from xpcore.warehouse import Warehouse

__all__ = ["load_registry", "registry_from_table"]

logger = logging.getLogger(__name__)


def registry_from_table(warehouse: Warehouse) -> RegistrySnapshot:
    """The registry folded from ``xp.registry`` rows (oldest change first); undecodable rows are skipped."""
    import msgspec

    from assignment.registry import RegistrySnapshot
    from schemas import RegistryRecord

    rows = warehouse.query_arrow(
        "SELECT record_id, kind, key, change, changed_by, changed_at, payload, schema_version "
        "FROM xp.registry ORDER BY changed_at, record_id"
    ).to_pylist()
    records = []
    for row in rows:
        row["payload"] = json.loads(row["payload"]) if row["payload"] else None
        try:
            records.append(msgspec.convert(row, RegistryRecord))
        except (msgspec.ValidationError, ValueError) as error:
            logger.warning("skipping registry row %s: %s", row["record_id"], error)
    return RegistrySnapshot.from_records(records)


def load_registry(settings: QualitySettings, warehouse: Warehouse) -> tuple[RegistrySnapshot, str | None]:
    """The registry to check against and, when it did not come from the topic as usual, a note why."""
    if settings.quality_registry_file is not None:
        from assignment.authoring import load_registry_file

        snapshot = load_registry_file(settings.quality_registry_file).snapshot()
        return snapshot, f"registry from {settings.quality_registry_file}"
    from assignment.registry_topic import read_registry

    try:
        return read_registry(settings, timeout=settings.quality_registry_timeout), None
    except XpError as error:
        logger.warning("cannot read the registry topic: %s", error)
        note = f"registry topic unreadable ({error}); used the xp.registry table instead"
        return registry_from_table(warehouse), note

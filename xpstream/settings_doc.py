"""Render docs/configuration.md from the settings classes, so the table is never written by hand.

Run ``python -m xpstream.settings_doc > docs/configuration.md``; a unit test fails when they differ.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from dashboards.settings import DashboardSettings
from jobs.unit_values import UnitValuesSettings
from pipelines.flink.settings import FlinkSettings
from quality.settings import QualitySettings
from xpcore.config import (
    CoreSettings,
    EtlSettings,
    KafkaSettings,
    LakeSettings,
    ServiceSettings,
    StackSettings,
    StreamSettings,
    WarehouseSettings,
)
from xpstream.scheduler.settings import SchedulerSettings
from xpstream.up.settings import UpSettings

__all__ = ["DEPLOYABLES", "render_configuration_doc"]

DEPLOYABLES: list[tuple[str, type[BaseSettings]]] = [
    ("Warehouse (every command that reads or loads ClickHouse)", WarehouseSettings),
    ("Kafka (every producer and consumer)", KafkaSettings),
    ("Local stack (`xp stack`)", StackSettings),
    ("One-shot commands (`xp …`)", CoreSettings),
    ("Stream worker (`xp stream run`)", StreamSettings),
    ("Assignment service (`xp assign serve`)", ServiceSettings),
    ("Data lake (`xp jobs run lake`)", LakeSettings),
    ("ETL rollups (`xp jobs run etl`)", EtlSettings),
    ("Results (`xp results`, `xp jobs run stats`, dashboard results)", UnitValuesSettings),
    ("Data quality (`xp jobs run quality`)", QualitySettings),
    ("Flink runner (`xp stream run --runner flink`)", FlinkSettings),
    ("Dashboard (`xp dashboard serve`, `xp up`)", DashboardSettings),
    ("Batch-job scheduler (inside `xp up`)", SchedulerSettings),
    ("Everything in one process (`xp up`)", UpSettings),
]

_HEADER = """# Configuration

Every setting is an environment variable with the `XP_` prefix, read once by the entry point into a
pydantic-settings class and passed down (nothing deeper reads the environment). Secrets are `SecretStr`:
never logged or printed. A class lists the settings it adds to the ones it builds on.

Kafka security (SASL/TLS for a production cluster, the local broker's generated principals, the ACL
table, registry signing keys and their rotation): docs/operations.md, section "Kafka security".

This file is generated: `python -m xpstream.settings_doc > docs/configuration.md`.
"""


def _default_text(settings_class: type[BaseSettings], name: str) -> str:
    field = settings_class.model_fields[name]
    if field.is_required():
        return "(required)"
    default = field.default
    if isinstance(default, SecretStr):
        return "(secret, empty)" if not default.get_secret_value() else "(secret)"
    if default is None:
        return "unset"
    return f"`{default}`"


def render_configuration_doc() -> str:
    """The markdown of docs/configuration.md."""
    lines = [_HEADER]
    seen: set[str] = set()
    for title, settings_class in DEPLOYABLES:
        names = [n for n in settings_class.model_fields if n not in seen]
        if not names:
            continue
        lines.append(f"## {title} — `{settings_class.__name__}`\n")
        lines.append("| variable | default | meaning |")
        lines.append("|---|---|---|")
        for name in names:
            field = settings_class.model_fields[name]
            description = (field.description or "").replace("|", "\\|")
            lines.append(f"| `XP_{name.upper()}` | {_default_text(settings_class, name)} | {description} |")
        lines.append("")
        seen.update(names)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_configuration_doc(), end="")

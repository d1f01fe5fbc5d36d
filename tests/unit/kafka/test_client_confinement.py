"""confluent_kafka is imported only by the Kafka adapters (xpcore/kafka/) and the Kafka runner.

Read from the product packages' ASTs (nothing is imported): every import counts, at module level, inside
functions (the lazy imports) and under ``TYPE_CHECKING`` (issue #14, issue #15 part 1; decision 0050).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("xpcore", "schemas", "assignment", "pipelines", "jobs", "quality", "dashboards", "xpstream")
ALLOWED_FOLDERS = ("xpcore/kafka/",)
ALLOWED_MODULES = frozenset({"pipelines/kafka_runner.py"})
CLIENT = "confluent_kafka"


def _client_imports(path: Path) -> list[int]:
    """Lines of ``path`` that import confluent_kafka (or one of its modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == CLIENT for alias in node.names):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == CLIENT
        ):
            lines.append(node.lineno)
    return lines


def _importers() -> dict[str, list[int]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = _client_imports(path)
            if lines:
                found[path.relative_to(ROOT).as_posix()] = lines
    return found


IMPORTERS = _importers()


def _allowed(relative: str) -> bool:
    return relative.startswith(ALLOWED_FOLDERS) or relative in ALLOWED_MODULES


def test_the_walk_sees_the_client_imports() -> None:
    """Imports we know are there are found (so an empty walk cannot pass the check below)."""
    assert "pipelines/kafka_runner.py" in IMPORTERS
    assert "xpcore/kafka/clients.py" in IMPORTERS
    assert "xpcore/kafka/group_offsets.py" in IMPORTERS
    assert "xpcore/kafka/topic_reader.py" in IMPORTERS


def test_the_walk_sees_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import confluent_kafka\n"
        "import os, confluent_kafka.admin as admin\n"
        "def f():\n    from confluent_kafka import Consumer\n"
        "from confluent_kafka.admin import AdminClient\n"
        "from . import confluent_kafka_like\n"
        "import confluent_kafkaesque\n"
    )
    assert sorted(_client_imports(module)) == [1, 2, 4, 5]


def test_confluent_kafka_only_in_the_kafka_adapters_and_the_kafka_runner() -> None:
    wrong = [f"{relative}:{line}" for relative, lines in IMPORTERS.items() if not _allowed(relative)
             for line in lines]  # fmt: skip
    assert not wrong, (
        "confluent_kafka outside xpcore/kafka/ and pipelines/kafka_runner.py (add an adapter in "
        "xpcore/kafka/ instead):\n" + "\n".join(wrong)
    )

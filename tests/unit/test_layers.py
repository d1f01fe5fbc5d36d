"""The layers of the product packages, read from their imports (ast: nothing is imported).

Bottom to top: ``xpcore`` ← ``schemas`` ← ``assignment``, ``pipelines``, ``jobs``, ``quality``,
``dashboards`` ← ``xpstream`` (docs/architecture.md, docs/decisions/0048). Every import counts: at
module level, inside functions (lazy imports) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("xpcore", "schemas", "assignment", "pipelines", "jobs", "quality", "dashboards", "xpstream")
ABOVE_XPCORE = frozenset(PACKAGES) - {"xpcore"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from xpstream import cli` imports xpstream.cli
                yield node.lineno, f"{module}.{alias.name}"


def _edges() -> list[tuple[str, str, str]]:
    """``(importing module, file:line, imported module)`` for every import between our packages."""
    edges = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, imported in _imports(path):
                if imported.split(".")[0] in PACKAGES:
                    where = f"{path.relative_to(ROOT)}:{line}"
                    edges.append((_module_name(path), where, imported))
    return edges


EDGES = _edges()


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_walk_sees_the_imports() -> None:
    """The walk finds imports we know are there (so an empty walk cannot pass the checks below)."""
    imported = {(importer, target) for importer, _, target in EDGES}
    assert ("xpstream.cli.jobs", "xpstream.batch.registry") in imported
    assert ("jobs.etl", "xpcore.config") in imported
    assert any(_top(importer) == "xpcore" and _top(target) == "xpcore" for importer, target in imported)


def test_xpcore_imports_no_other_package_of_ours() -> None:
    wrong = [f"{where} imports {target}" for importer, where, target in EDGES
             if _top(importer) == "xpcore" and _top(target) in ABOVE_XPCORE]  # fmt: skip
    assert not wrong, "xpcore is the floor:\n" + "\n".join(wrong)


def test_only_xpstream_imports_xpstream() -> None:
    wrong = [f"{where} imports {target}" for importer, where, target in EDGES
             if _top(importer) != "xpstream" and _top(target) == "xpstream"]  # fmt: skip
    assert not wrong, "xpstream is the application on top:\n" + "\n".join(wrong)


def test_nothing_outside_the_cli_imports_the_cli() -> None:
    wrong = [f"{where} imports {target}" for importer, where, target in EDGES
             if not (importer == "xpstream.cli" or importer.startswith("xpstream.cli."))
             and (target == "xpstream.cli" or target.startswith("xpstream.cli."))]  # fmt: skip
    assert not wrong, "the CLI is the top; nothing calls into it:\n" + "\n".join(wrong)


def test_schemas_imports_only_xpcore() -> None:
    wrong = [f"{where} imports {target}" for importer, where, target in EDGES
             if _top(importer) == "schemas" and _top(target) not in ("schemas", "xpcore")]  # fmt: skip
    assert not wrong, "schemas sits on xpcore only:\n" + "\n".join(wrong)


# Where confluent_kafka may be imported (the Kafka adapters and the Kafka runner) is checked in
# tests/unit/kafka/test_client_confinement.py.


def test_no_product_module_over_500_lines() -> None:
    long = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > 500:
                long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, "modules over ~500 lines (STYLE.md habit 2):\n" + "\n".join(long)

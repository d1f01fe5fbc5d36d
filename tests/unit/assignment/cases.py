"""Locate and load GrowthBook's cross-SDK conformance cases (never copied into this repository).

The file lives next to the repository: ``<repo>/../shared/conformance/growthbook-cases.json``;
``XP_CONFORMANCE_CASES`` points elsewhere. When it is absent, the conformance tests skip.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["CASES_PATH", "SKIP_REASON", "load_section", "section_names"]

REPO_ROOT = Path(__file__).resolve().parents[3]
CASES_PATH = Path(
    os.environ.get("XP_CONFORMANCE_CASES")
    or REPO_ROOT.parent / "shared" / "conformance" / "growthbook-cases.json"
)
SKIP_REASON = f"GrowthBook conformance cases not found at {CASES_PATH} (set XP_CONFORMANCE_CASES)"


@lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    if not CASES_PATH.is_file():
        return {}
    with CASES_PATH.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def load_section(name: str) -> list[Any]:
    """The cases of one section ([] when the file is absent)."""
    section = _load().get(name, [])
    return list(section) if isinstance(section, list) else []


def section_names() -> set[str]:
    """The names of the sections that hold cases (empty when the file is absent)."""
    return {name for name, section in _load().items() if isinstance(section, list)}

"""Experiments as people write them (YAML) → registry entries (pure but for reading the file).

Two input formats, told apart by their top-level keys (docs/registry.md has the full reference):

- **xpstream YAML**: ``experiments:`` (a list), optional ``metrics:`` (user-defined metrics) and
  ``saved_groups:``. Each experiment compiles to an :class:`~schemas.ExperimentDefinition` (its
  GrowthBook experiment rule plus authoring metadata) and contributes that rule to a
  :class:`~schemas.FeatureDefinition` (key: the experiment's ``feature``, default its key).
- **GrowthBook SDK payload** (``{"features": …, "savedGroups": …}``, JSON or YAML): taken as is; one
  feature entry per feature and one running experiment entry per experiment rule.

Every problem raises one :class:`~xpcore.errors.ValidationError` naming the file, the experiment and
the field, e.g. ``experiments.yaml: experiment 'checkout': variations[1].weight: must be ≥ 0``.

Modules:

- :mod:`~assignment.authoring.files`: text and files → :class:`AuthoredRegistry` (the public entry points)
- :mod:`~assignment.authoring.models`: the YAML as pydantic models (strict, unknown fields refused)
- :mod:`~assignment.authoring.values`: keys, times, namespaces, JSON values
- :mod:`~assignment.authoring.problems`: a pydantic error → the one line the user reads (decision 0052)
- :mod:`~assignment.authoring.yaml_experiments`: checked YAML → entries (rules across experiments)
- :mod:`~assignment.authoring.growthbook`: a GrowthBook payload → entries
- :mod:`~assignment.authoring.authored`: :class:`AuthoredRegistry`, saved groups
- the ``analysis:`` block's rules: :mod:`assignment.analysis_block` (shared with ``jobs/analysis_plan.py``)

::

    authored = load_registry_file(Path("examples/experiments.yaml"))
    authored.experiments, authored.features       # entries with version 1 (the publisher renumbers)
    authored.snapshot().payload()                  # what an SDK would get if this file were the registry
"""

from __future__ import annotations

from assignment.authoring.authored import AuthoredRegistry
from assignment.authoring.files import (
    load_payload_file,
    load_registry_file,
    load_snapshot,
    parse_registry_document,
    parse_registry_text,
)
from assignment.authoring.models import WEIGHT_TOLERANCE
from assignment.authoring.values import KEY_PATTERN

__all__ = [
    "KEY_PATTERN",
    "WEIGHT_TOLERANCE",
    "AuthoredRegistry",
    "load_payload_file",
    "load_registry_file",
    "load_snapshot",
    "parse_registry_document",
    "parse_registry_text",
]

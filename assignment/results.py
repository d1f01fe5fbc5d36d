"""What an evaluation returns: :class:`FeatureResult` for a feature, :class:`ExperimentResult` for an
experiment. Both are immutable named tuples (cheap to build, safe to share between units).

Field meanings follow GrowthBook's ``FeatureResult``/``Result`` in snake_case. ``source`` keeps
GrowthBook's names: ``unknownFeature``, ``defaultValue``, ``force``, ``experiment``,
``prerequisite``, ``cyclicPrerequisite`` (and ``override``, reserved for forced feature values).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

__all__ = ["SOURCES", "ExperimentResult", "FeatureResult", "js_truthy"]

SOURCES = (
    "unknownFeature",
    "defaultValue",
    "force",
    "experiment",
    "prerequisite",
    "cyclicPrerequisite",
    "override",
)


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness: None, False, 0, NaN and "" are falsy; empty lists and dicts are not."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


class ExperimentResult(NamedTuple):
    """One unit's outcome in one experiment (GrowthBook's ``Result``).

    ``variation_id`` is 0 when the unit is not in the experiment (as in GrowthBook; ``value`` is then
    the first variation's). ``hash_value`` is the raw attribute value used for hashing.
    """

    experiment_key: str
    feature_key: str | None
    value: Any
    variation_id: int
    in_experiment: bool
    hash_used: bool
    hash_attribute: str
    hash_value: Any
    bucket: float | None = None
    variation_key: str = ""
    variation_name: str = ""
    passthrough: bool = False
    sticky_bucket_used: bool = False


class FeatureResult(NamedTuple):
    """One unit's value for one feature and why.

    ``variation_id``/``bucket``/``variation_key`` are set only when ``source == "experiment"``; then
    ``in_experiment`` is true and ``hash_used`` tells whether the unit was hashed (False when its
    variation was forced); ``sticky_bucket_used``: the variation came from a sticky bucket.
    """

    value: Any
    source: str
    rule_id: str = ""
    experiment_key: str | None = None
    in_experiment: bool = False
    variation_id: int | None = None
    hash_used: bool = False
    hash_attribute: str | None = None
    hash_value: Any = None
    bucket: float | None = None
    variation_key: str | None = None
    variation_name: str | None = None
    sticky_bucket_used: bool = False

    @property
    def on(self) -> bool:
        """The value is truthy (JavaScript rules)."""
        return js_truthy(self.value)

    @property
    def off(self) -> bool:
        """The value is falsy (JavaScript rules)."""
        return not js_truthy(self.value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (snake_case) including ``on``/``off``."""
        data = dict(zip(self._fields, self, strict=True))
        on = js_truthy(self[0])
        data["on"] = on
        data["off"] = not on
        return data

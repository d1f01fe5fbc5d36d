"""Hand-made records shared by tests."""

from __future__ import annotations

from datetime import datetime

from schemas import Exposure, ExposureSource

__all__ = ["make_exposure"]


def make_exposure(
    unit: str, variation: int, at: datetime, i: int, overridden: bool, experiment: str = "exp"
) -> Exposure:
    """Exposure number ``i`` of ``unit`` to ``variation`` of ``experiment`` (id ``x-EXP-UNIT-I``)."""
    return Exposure(
        exposure_id=f"x-{experiment}-{unit}-{i}",
        unit_id=unit,
        hash_attribute="id",
        experiment_key=experiment,
        variation_id=variation,
        variation_key=f"v{variation}",
        overridden=overridden,
        source=ExposureSource.LOADGEN,
        exposed_at=at,
    )

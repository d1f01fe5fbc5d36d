"""The stream benches' synthetic traffic: one unit's exposure and its events (same ids, names, values and
times in every bench that uses them, so their figures describe the same records)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from schemas import Exposure, ExposureSource, MetricEvent

__all__ = ["unit_events", "unit_exposure"]


def unit_exposure(
    unit: str, u: int, at: datetime, experiment: str = "bench", exposure_id: str = ""
) -> Exposure:
    """Unit number ``u``'s exposure to ``experiment`` at ``at``: variation ``u % 2``."""
    return Exposure(
        exposure_id=exposure_id or f"x-{unit}",
        unit_id=unit,
        hash_attribute="id",
        experiment_key=experiment,
        variation_id=u % 2,
        variation_key=str(u % 2),
        source=ExposureSource.LOADGEN,
        exposed_at=at,
    )


def unit_events(unit: str, count: int, at: datetime, rng: random.Random) -> Iterator[MetricEvent]:
    """The unit's ``count`` events within 15 minutes after ``at``: every fourth a 12.5 purchase, the rest
    page views (one ``rng.randrange`` call each, in order)."""
    for j in range(count):
        name = "purchase" if j % 4 == 0 else "pageview"
        yield MetricEvent(
            event_id=f"e-{unit}-{j}",
            unit_id=unit,
            event_name=name,
            value=12.5 if name == "purchase" else None,
            occurred_at=at + timedelta(seconds=rng.randrange(900)),
        )

"""The stream benches' synthetic traffic: one unit's exposure and its events (same ids, names, values and
times in every bench that uses them, so their figures describe the same records), and the in-process
kernel they run it through."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from schemas import Exposure, ExposureSource, MetricEvent

if TYPE_CHECKING:
    from pipelines.attribution import AttributionState
    from pipelines.kernel import ValidationRules
    from pipelines.processor import StreamProcessor

__all__ = ["bench_kernel", "unit_events", "unit_exposure"]


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


def bench_kernel(
    keys: Sequence[str], attribution: AttributionState, rules: ValidationRules | None = None
) -> StreamProcessor:
    """The stream kernel over topics ``x`` (exposures) and ``e`` (events), experiments ``keys`` with
    variations 0 and 1, the bench events' names, the worker's dedup and size defaults."""
    from pipelines.kernel import ValidationRules
    from pipelines.processor import RegistryView, StreamProcessor

    registry = RegistryView(
        {key: frozenset({0, 1}) for key in keys},
        {(key, v): name for key in keys for v, name in ((0, "Control"), (1, "Treat"))},
    )
    processor = StreamProcessor(
        exposures_topic="x",
        events_topic="e",
        rules=rules or ValidationRules(known_event_names=frozenset({"purchase", "pageview"})),
        registry=registry,
        attribution=attribution,
        dedup_retention=timedelta(hours=1),
        dedup_max_ids=5_000_000,
        max_record_bytes=1_000_000,
    )
    processor.set_registry(registry)
    return processor

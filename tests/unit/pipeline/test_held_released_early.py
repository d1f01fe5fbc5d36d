"""Held events released by the cap are reported: the run's report and the worker's Prometheus counter."""

from __future__ import annotations

from datetime import timedelta

from pipelines.metrics import StreamMetrics
from pipelines.stream_report import StreamReport
from tests.unit.pipeline.helpers import event, exposure, make_processor, minutes, raw_event, raw_exposure


def test_events_released_by_the_cap_are_counted_and_lose_their_late_exposure() -> None:
    processor = make_processor(max_lateness=timedelta(days=7))
    processor.attribution.max_held = 2
    metrics, report = StreamMetrics(), StreamReport()

    def run(raws: list, now_minutes: float) -> int:
        output = processor.process(raws, minutes(now_minutes))
        processor.remember_ids(output)  # releases what the cap no longer holds
        metrics.record_batch(output, processor)
        report.add_batch(output, held_released_early=processor.attribution.released_early)
        return output.attributed.num_rows

    run([raw_event(event(f"e{i}", f"u{i}", at=minutes(0)), offset=i) for i in range(5)], 1)
    assert report.as_dict()["held_released_early"] == 3
    assert metrics.registry.get_sample_value("xp_stream_held_released_early_total") == 3
    run([raw_event(event("e5", "u5", at=minutes(0)), offset=5)], 2)
    assert metrics.registry.get_sample_value("xp_stream_held_released_early_total") == 4  # e2 went

    # u0's event was released early: its late exposure (within the hold) no longer attributes it; u4's does.
    rows = run([raw_exposure(exposure(f"x{u}", f"u{u}", at=minutes(-1)), offset=u) for u in (0, 4)], 3)
    assert rows == 1
    assert report.held_released_early == 4

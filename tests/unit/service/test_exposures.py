"""Exposures from the service: one per in-experiment assignment, stable ids, the dedup window."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.testclient import TestClient

from assignment import compile_payload
from assignment.registry import RegistrySnapshot
from assignment.service.app import build_app
from assignment.service.exposures import DedupWindow, MemorySink, build_exposure, exposure_id
from schemas import Exposure, Override, RecordCodec
from tests.unit.service.conftest import PAYLOAD, US_UNITS, make_service

CODEC = RecordCodec(Exposure)


def _exposures(sink: MemorySink) -> list[Exposure]:
    return [CODEC.decode(value) for topic, _, value in sink.records if topic == "xp.exposures"]


def test_one_exposure_per_in_experiment_assignment_keyed_by_unit() -> None:
    sink = MemorySink()
    engine = compile_payload(PAYLOAD)
    with TestClient(build_app(make_service(sink=sink))) as client:
        for unit in US_UNITS[:40]:
            client.post("/v1/assign", json={"attributes": unit}, headers={"User-Agent": "ua/1"})
    expected = sorted(
        (r.experiment_key, str(r.hash_value), r.variation_id)
        for unit in US_UNITS[:40]
        for r in engine.evaluate_all(unit).values()
        if r.in_experiment
    )
    exposures = _exposures(sink)
    assert sorted((e.experiment_key, e.unit_id, e.variation_id) for e in exposures) == expected
    assert {key for topic, key, _ in sink.records} == {e.unit_id for e in exposures}
    first = exposures[0]
    assert first.source == "service" and first.user_agent == "ua/1" and first.overridden is False
    assert first.attributes == {"country": "US"}  # only the configured segment attributes
    pricing = [e for e in exposures if e.experiment_key == "pricing-exp"]
    assert pricing and all(e.hash_attribute == "device_id" and e.unit_id.startswith("d") for e in pricing)


def test_repeat_requests_are_deduplicated_and_expose_false_sends_none() -> None:
    sink = MemorySink()
    with TestClient(build_app(make_service(sink=sink))) as client:
        for _ in range(3):
            client.post("/v1/assign", json={"attributes": US_UNITS[0]})
            client.post("/v1/assign/batch", json={"units": US_UNITS[:5]})
        sent = len(sink.records)
        client.post("/v1/assign", json={"attributes": US_UNITS[10], "expose": False})
        assert len(sink.records) == sent
        metrics = client.get("/metrics").text
    assert len({e.exposure_id for e in _exposures(sink)}) == len(_exposures(sink))
    assert 'xp_service_exposures_total{outcome="deduplicated"}' in metrics


def test_overridden_exposures_are_marked() -> None:
    engine = compile_payload(PAYLOAD)
    unit = next(u for u in US_UNITS if engine.evaluate("checkout", u).in_experiment)
    natural = engine.evaluate("checkout", unit).variation_id
    assert natural is not None
    override = Override(experiment_key="checkout-exp", unit_id=unit["id"], variation_id=1 - natural)
    sink = MemorySink()
    service = make_service(
        sink=sink, snapshot=RegistrySnapshot(overrides={("checkout-exp", unit["id"]): override})
    )
    with TestClient(build_app(service)) as client:
        client.post("/v1/assign", json={"attributes": unit})
    (exposure,) = [e for e in _exposures(sink) if e.experiment_key == "checkout-exp"]
    assert exposure.overridden is True and exposure.variation_id == 1 - natural
    assert exposure.variation_key == ["control", "one-page"][1 - natural]


def test_exposure_id_is_stable_within_a_window_and_differs_across() -> None:
    engine = compile_payload(PAYLOAD)
    result = next(r for u in US_UNITS if (r := engine.evaluate("checkout", u)).in_experiment)
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    later = datetime(2026, 11, 25, 10, 20, tzinfo=UTC)
    next_window = datetime(2026, 11, 25, 10, 31, tzinfo=UTC)

    def build(now: datetime) -> Exposure:
        exposure = build_exposure(
            result,
            "checkout",
            attributes={},
            copied_attributes=(),
            overridden=False,
            now=now,
            window_seconds=1800,
        )
        assert exposure is not None
        return exposure

    assert build(at).exposure_id == build(later).exposure_id != build(next_window).exposure_id
    assert exposure_id("e", "u", 0, 1) != exposure_id("e", "u", 1, 1) != exposure_id("e", "v", 1, 1)


def test_not_in_experiment_builds_nothing() -> None:
    engine = compile_payload(PAYLOAD)
    result = engine.evaluate("checkout", {"id": "u1", "country": "FR"})
    now = datetime.now(UTC)
    assert (
        build_exposure(
            result,
            "checkout",
            attributes={},
            copied_attributes=(),
            overridden=False,
            now=now,
            window_seconds=60,
        )
        is None
    )


def test_dedup_window_expires_and_is_bounded() -> None:
    now = [0.0]
    window = DedupWindow(10.0, max_entries=4, clock=lambda: now[0])
    assert window.first_seen(("u1", "e", 0))
    assert not window.first_seen(("u1", "e", 0))
    assert window.first_seen(("u1", "e", 1))  # another variation is another exposure
    now[0] = 9.9
    assert not window.first_seen(("u1", "e", 0))
    now[0] = 10.5
    assert window.first_seen(("u1", "e", 0))  # its window passed
    assert not window.first_seen(("u1", "e", 0))
    for i in range(100):
        window.first_seen((f"x{i}", "e", 0))
        assert len(window) <= 4  # bounded: the oldest generation goes
    assert window.first_seen(("u1", "e", 0))  # evicted, so seen again
    now[0] = 100.0
    assert window.first_seen(("x99", "e", 0))  # long idle: everything expired
    assert DedupWindow(0, 10).first_seen(("a", "b", 0)) and DedupWindow(0, 10).first_seen(("a", "b", 0))


def test_dedup_window_keeps_every_dict_small() -> None:
    # one dict of 100k+ keys stalls an insert for 10-60 ms when it resizes; shards keep tables small
    window = DedupWindow(3600, max_entries=400_000)
    for i in range(100_000):
        window.first_seen((f"user-{i:07d}", "checkout-exp", 1))
    assert len(window) == 100_000
    assert max(len(shard) for shard in window._current + window._previous) < 100_000 / 32

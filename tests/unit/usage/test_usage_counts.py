"""Usage per client key and token (decision 0092): counted by key id, bounded labels, never the secret."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from prometheus_client import generate_latest
from pydantic import SecretStr
from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from tests.unit.service.conftest import US_UNITS, make_service
from xpcore.kafka.topics import EXPOSURES
from xpcore.usage import NO_KEY, UNKNOWN_KEY, KeyIds, UsageCounts, key_id

CLIENT, OTHER, ADMIN = "client-secret-one", "client-secret-two", "admin-secret"


def test_a_key_id_names_a_key_without_revealing_it() -> None:
    assert key_id(CLIENT) == "key-" + hashlib.sha256(CLIENT.encode()).hexdigest()[:8]
    assert key_id(CLIENT) != key_id(OTHER) and CLIENT not in key_id(CLIENT)
    ids = KeyIds([CLIENT, OTHER, ""])
    assert ids(CLIENT) == key_id(CLIENT) and ids(OTHER) == key_id(OTHER)
    assert ids(None) == ids("") == NO_KEY
    assert ids("made-up") == ids(CLIENT + " ") == UNKNOWN_KEY  # any number of made-up keys: one label


def test_counts_are_per_utc_day_and_a_failed_flush_puts_them_back() -> None:
    now = [datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC)]
    counts = UsageCounts(clock=lambda: now[0])
    counts.add("service_requests", "key-1 assign")
    now[0] += timedelta(seconds=2)
    counts.add("service_requests", "key-1 assign", 3)
    counts.add("service_exposures", "key-1", 0)  # nothing: no row
    drained = counts.drain()
    assert drained == Counter(
        {
            (date(2026, 12, 4), "service_requests", "key-1 assign"): 1,
            (date(2026, 12, 5), "service_requests", "key-1 assign"): 3,
        }
    )
    assert counts.drain() == Counter()
    counts.restore(drained)
    counts.add("service_requests", "key-1 assign")
    assert counts.drain()[(date(2026, 12, 5), "service_requests", "key-1 assign")] == 4


def test_the_service_counts_requests_and_exposures_per_client_key_id() -> None:
    service = make_service(keys=KeyRing.from_secrets(SecretStr(f"{CLIENT},{OTHER}"), SecretStr(ADMIN)))
    with TestClient(build_app(service)) as client:
        for unit in US_UNITS[:20]:
            answer = client.post("/v1/assign", json={"attributes": unit}, headers={"X-XP-Key": CLIENT})
            assert answer.status_code == 200
        assert client.post("/v1/assign", json={"attributes": US_UNITS[0]}).status_code == 401
        bad = client.post("/v1/assign", json={"attributes": US_UNITS[0]}, headers={"X-XP-Key": "made-up"})
        assert bad.status_code == 401
        assert client.post(f"/api/eval/{OTHER}", json={"attributes": US_UNITS[1]}).status_code == 200
    assert isinstance(service.sink, MemorySink)
    exposed = sum(topic == EXPOSURES for topic, _, _ in service.sink.records)
    usage = service.usage.drain()
    today = datetime.now(UTC).date()
    requests = {s: n for (d, k, s), n in usage.items() if k == "service_requests" and d == today}
    assert requests == {
        f"{key_id(CLIENT)} assign": 20,
        f"{NO_KEY} assign": 1,
        f"{UNKNOWN_KEY} assign": 1,
        f"{key_id(OTHER)} sdk_eval": 1,
    }
    exposures = {s: n for (_, k, s), n in usage.items() if k == "service_exposures"}
    assert exposures.keys() <= {key_id(CLIENT), key_id(OTHER)} and exposures[key_id(CLIENT)] > 0
    assert sum(exposures.values()) == exposed > 0
    metrics = generate_latest(service.metrics.registry).decode()
    assert f'xp_service_client_requests_total{{client="{key_id(CLIENT)}",endpoint="assign"}} 20.0' in metrics
    assert (
        f'xp_service_client_exposures_total{{client="{key_id(CLIENT)}"}} {exposures[key_id(CLIENT)]}.0'
        in metrics
    )
    for secret in (CLIENT, OTHER, ADMIN, "made-up"):
        assert secret not in metrics and all(secret not in s for _, _, s in usage)

"""Per-client rate limits on the client routes: 429 with Retry-After, per credential, bounded (issue #17)."""

from __future__ import annotations

from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.rate_limit import ClientRateLimit, credential_of

from .conftest import make_service


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_when_the_next_token_comes() -> None:
    clock = _Clock()
    limit = ClientRateLimit(2.0, 3, clock=clock)
    assert [limit.check("a") for _ in range(3)] == [None, None, None]
    assert limit.check("a") == 0.5  # 1 token at 2/s
    assert limit.check("b") is None  # every client has its own bucket
    clock.now += 0.5
    assert limit.check("a") is None and limit.check("a") == 0.5


def test_made_up_credentials_cannot_grow_memory() -> None:
    limit = ClientRateLimit(1.0, 1, max_clients=100, clock=_Clock())
    for i in range(10_000):
        limit.check(f"k{i}")
    assert len(limit._buckets) == 100


def test_the_credential_is_the_key_presented_else_the_address() -> None:
    def scope(path: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
        return {"path": path, "headers": list(headers), "client": ("10.0.0.7", 5000)}

    assert credential_of(scope("/v1/assign", (b"authorization", b"Bearer abc"))) == "key:abc"
    assert credential_of(scope("/ofrep/v1/evaluate/flags", (b"x-api-key", b"k1"))) == "key:k1"
    assert credential_of(scope("/api/features/ck-1")) == "key:ck-1"
    assert credential_of(scope("/sub/ck-2")) == "key:ck-2"
    assert credential_of(scope("/v1/assign")) == "addr:10.0.0.7"


def test_client_routes_answer_429_with_retry_after_and_other_routes_are_never_limited() -> None:
    clock = _Clock()
    service = make_service(rate_limit=ClientRateLimit(1.0, 2, clock=clock))
    with TestClient(build_app(service)) as client:
        body = {"attributes": {"id": "u1", "country": "US"}}
        codes = [client.post("/v1/assign", json=body).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.post("/v1/assign", json=body)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        assert "rate limit" in limited.json()["error"]
        # OFREP clients get OFREP's error shape; a page can read the 429 (CORS) and its delay
        ofrep = client.post(
            "/ofrep/v1/evaluate/flags/checkout",
            json={"context": {"targetingKey": "u1"}},
            headers={"Origin": "https://shop.example"},
        )
        assert ofrep.status_code == 429 and "errorDetails" in ofrep.json()
        assert ofrep.headers["access-control-allow-origin"] == "*"
        assert "Retry-After" in ofrep.headers["access-control-expose-headers"]
        assert all(client.get("/healthz").status_code == 200 for _ in range(5))  # operations: never
        assert client.get("/metrics").status_code == 200
        clock.now += 1.0  # a token back
        assert client.post("/v1/assign", json=body).status_code == 200


def test_no_limit_by_default() -> None:
    with TestClient(build_app(make_service())) as client:
        body = {"attributes": {"id": "u1"}}
        assert {client.post("/v1/assign", json=body).status_code for _ in range(50)} == {200}

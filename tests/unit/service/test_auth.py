"""Auth matrix: no key / client key / admin key, open (no keys) vs keyed; loopback vs not."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.auth import AccessLevel, KeyRing, check_bind, is_loopback, key_from_headers
from tests.unit.service.conftest import make_service
from xpcore.errors import ConfigError

KEYS = KeyRing.from_secrets(SecretStr("c1, c2"), SecretStr("a1"))
CLIENT = {"Authorization": "Bearer c2"}
ADMIN = {"X-XP-Key": "a1"}
WRONG = {"Authorization": "Bearer nope"}
OVERRIDE = {"experiment_key": "checkout-exp", "unit_id": "u1", "variation_id": 1}


def test_key_levels() -> None:
    assert KEYS.level(None) is AccessLevel.NONE
    assert KEYS.level("nope") is AccessLevel.NONE
    assert KEYS.level("c1") is AccessLevel.CLIENT
    assert KEYS.level("a1") is AccessLevel.ADMIN
    assert KeyRing().level(None) is AccessLevel.ADMIN  # open: loopback development
    assert key_from_headers("Bearer k", None) == "k"
    assert key_from_headers("Basic zzz", "k2") == "k2"


def test_keys_never_in_repr() -> None:
    assert "c1" not in repr(KEYS) and "a1" not in repr(KEYS)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("::", False),
        ("example.com", False),
    ],
)
def test_bind_rule(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    check_bind(host, KEYS)  # keys: any bind is fine
    if loopback:
        check_bind(host, KeyRing())
    else:
        with pytest.raises(ConfigError, match="refusing to bind") as raised:
            check_bind(host, KeyRing())
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("headers", "client_status", "admin_status"),
    [({}, 401, 401), (WRONG, 401, 401), (CLIENT, 200, 403), (ADMIN, 200, 409)],
    ids=["none", "wrong", "client", "admin"],
)
def test_matrix_with_keys(headers: dict[str, str], client_status: int, admin_status: int) -> None:
    with TestClient(build_app(make_service(keys=KEYS))) as client:
        assert (
            client.post("/v1/assign", json={"attributes": {"id": "u"}}, headers=headers).status_code
            == client_status
        )
        assert (
            client.post("/v1/assign/batch", json={"units": []}, headers=headers).status_code == client_status
        )
        events = client.post("/v1/events", json={}, headers=headers).status_code
        assert events == (202 if client_status == 200 else 401)
        # admin endpoint: 409 because this service serves a static file (auth passed)
        assert client.post("/v1/overrides", json=OVERRIDE, headers=headers).status_code == admin_status
        assert client.delete("/v1/overrides/checkout-exp/u1", headers=headers).status_code == admin_status
        # open endpoints
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_sdk_endpoint_takes_the_client_key_from_the_path() -> None:
    with TestClient(build_app(make_service(keys=KEYS))) as client:
        assert client.get("/api/features/c1").status_code == 200
        assert client.get("/api/features/a1").status_code == 403  # an admin key never in a URL
        assert client.get("/api/features/wrong").status_code == 401


def test_open_service_opens_client_routes_only() -> None:
    """No keys configured (loopback development): client routes are open, admin routes are not
    (they used to be: every caller was an admin — issue #13, item 4)."""
    with TestClient(build_app(make_service())) as client:
        assert client.post("/v1/assign", json={"attributes": {"id": "u"}}).status_code == 200
        assert client.get("/api/features/anything").status_code == 200
        assert client.post("/v1/overrides", json=OVERRIDE).status_code == 403
        assert client.delete("/v1/overrides/checkout-exp/u1").status_code == 403


def test_keys_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(build_app(make_service(keys=KEYS))) as client:
        client.post("/v1/assign", json={"attributes": {"id": "u"}}, headers=CLIENT)
        client.post("/v1/assign", json={"attributes": {"id": "u"}}, headers=WRONG)
    assert "c2" not in caplog.text and "nope" not in caplog.text

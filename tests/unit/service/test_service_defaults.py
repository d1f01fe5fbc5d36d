"""Issue #13, item 4: the service's defaults — admin routes always need an admin key (a generated
one, stored 0600 under $XP_HOME, when none is configured), the actor in the audit trail is the key's
name, CORS only on client routes, bodies parsed only as application/json."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from assignment.service.admin_key import LOCAL_ADMIN_NAME, local_admin_key_path, read_local_admin_key
from assignment.service.app import build_app
from assignment.service.auth import AccessLevel, KeyRing, check_bind
from assignment.service.server import build_service
from assignment.service.sources import StaticPayloadSource
from schemas import RegistryRecord
from tests.unit.service.conftest import PAYLOAD, make_service
from xpcore.config import ServiceSettings
from xpcore.errors import ConfigError

OVERRIDE = {"experiment_key": "checkout-exp", "unit_id": "u1", "variation_id": 1}
JSON = {"content-type": "application/json"}


class _RegistrySource(StaticPayloadSource):
    follows_registry = True  # type: ignore[assignment]


def _registry_service(keys: KeyRing) -> tuple[Any, list[RegistryRecord]]:
    published: list[RegistryRecord] = []
    service = make_service(keys=keys, source=_RegistrySource(PAYLOAD), publisher=published.extend)
    return service, published


def test_named_admin_keys_and_actor() -> None:
    ring = KeyRing.from_secrets(SecretStr("c1"), SecretStr("alice:s3cret, plainkey"), named=True)
    assert ring.identify("s3cret") == (AccessLevel.ADMIN, "alice")
    assert ring.identify("plainkey") == (AccessLevel.ADMIN, "admin-2")
    assert ring.identify("alice:s3cret") == (AccessLevel.NONE, None)  # the name is not part of the key
    assert ring.identify("c1") == (AccessLevel.CLIENT, None)
    assert KeyRing().identify(None) == (AccessLevel.NONE, None)  # open ring: still no admin
    assert "s3cret" not in repr(ring) and "alice" not in repr(ring)
    # the dashboards' rings are unchanged: a colon is part of the token
    assert KeyRing.from_secrets(None, SecretStr("a:b")).level("a:b") is AccessLevel.ADMIN


def test_actor_comes_from_the_key_and_a_spoofed_changed_by_is_refused() -> None:
    ring = KeyRing.from_secrets(None, SecretStr("alice:ka,bob:kb"), named=True)
    service, published = _registry_service(ring)
    with TestClient(build_app(service)) as client:
        assert client.post("/v1/overrides", json=OVERRIDE, headers={"X-XP-Key": "kb"}).status_code == 202
        spoofed = client.post(
            "/v1/overrides", json={**OVERRIDE, "changed_by": "alice"}, headers={"X-XP-Key": "kb"}
        )
        assert spoofed.status_code == 422 and "changed_by" in spoofed.json()["error"]
        same = client.post(
            "/v1/overrides", json={**OVERRIDE, "changed_by": "bob"}, headers={"X-XP-Key": "kb"}
        )
        assert same.status_code == 202
        assert client.delete("/v1/overrides/checkout-exp/u1", headers={"X-XP-Key": "ka"}).status_code == 202
        assert client.post("/v1/overrides", json=OVERRIDE).status_code == 401
    assert [r.changed_by for r in published] == ["bob", "bob", "alice"]


def test_open_clients_with_a_generated_admin_key(tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path, service_features_file=None)
    service = _build_static(settings)
    path = local_admin_key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key = read_local_admin_key(tmp_path)
    assert key and service.keys.identify(key) == (AccessLevel.ADMIN, LOCAL_ADMIN_NAME)
    assert service.open_clients
    # the same key on the next start
    assert _build_static(settings).keys.identify(key)[0] is AccessLevel.ADMIN
    with TestClient(build_app(service)) as client:
        assert client.post("/v1/assign", json={"attributes": {"id": "u"}}).status_code == 200
        assert client.post("/v1/overrides", json=OVERRIDE).status_code == 403
        assert client.post("/v1/overrides", json=OVERRIDE, headers={"X-XP-Key": key}).status_code == 409


def test_a_readable_generated_key_is_refused(tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path)
    _build_static(settings)
    local_admin_key_path(tmp_path).chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        _build_static(settings)


def test_bind_refusal_ignores_the_generated_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"refusing to bind 0\.0\.0\.0"):
        _build_static(ServiceSettings(home=tmp_path, service_host="0.0.0.0"))
    check_bind("0.0.0.0", KeyRing.from_secrets(SecretStr("c"), None))


def _build_static(settings: ServiceSettings) -> Any:
    features = settings.home / "features.json"
    if not features.exists():
        import json

        features.write_text(json.dumps(PAYLOAD))
    return build_service(settings.model_copy(update={"service_features_file": features}))


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("path", ["/v1/assign", "/v1/assign/batch", "/v1/events", "/v1/overrides"])
def test_bodies_need_application_json(path: str, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    service, published = _registry_service(KeyRing.from_secrets(None, SecretStr("ak")))
    with TestClient(build_app(service)) as client:
        body = b'{"attributes": {"id": "u"}, "units": [], "experiment_key": "checkout-exp", "unit_id": "u1"}'
        response = client.post(path, content=body, headers={**headers, "X-XP-Key": "ak"})
        assert response.status_code == 415
        assert "application/json" in response.json()["error"]
        ok = client.post(
            "/v1/assign",
            content=b'{"attributes": {"id": "u"}}',
            headers={"content-type": "application/json; charset=utf-8", "X-XP-Key": "ak"},
        )
        assert ok.status_code == 200
    assert published == []


def test_cors_only_on_client_routes() -> None:
    service, published = _registry_service(KeyRing.from_secrets(None, SecretStr("ak")))
    origin = {"origin": "http://evil.example", "X-XP-Key": "ak"}
    with TestClient(build_app(service)) as client:
        for path in ("/v1/assign", "/v1/assign/batch", "/v1/events", "/api/features/x"):
            preflight = client.options(path, headers={**origin, "access-control-request-method": "POST"})
            assert preflight.status_code == 204, path
            assert preflight.headers["access-control-allow-origin"] == "*"
        answer = client.post("/v1/assign", json={"attributes": {"id": "u"}}, headers=origin)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
        # admin routes: no preflight, no CORS, and a request from a page is refused even with the key
        preflight = client.options(
            "/v1/overrides", headers={**origin, "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers
        from_page = client.post("/v1/overrides", json=OVERRIDE, headers=origin)
        assert from_page.status_code == 403 and "access-control-allow-origin" not in from_page.headers
        deleted = client.delete("/v1/overrides/checkout-exp/u1", headers=origin)
        assert deleted.status_code == 403
        for path in ("/healthz", "/metrics", "/openapi.json"):
            assert "access-control-allow-origin" not in client.get(path, headers=origin).headers
        # without Origin (curl, local commands) the key is enough
        assert client.post("/v1/overrides", json=OVERRIDE, headers={"X-XP-Key": "ak"}).status_code == 202
    assert len(published) == 1


def test_an_admin_key_is_refused_in_the_sdk_payload_url() -> None:
    ring = KeyRing.from_secrets(SecretStr("c1"), SecretStr("alice:s3cret"), named=True)
    with TestClient(build_app(make_service(keys=ring))) as client:
        assert client.get("/api/features/c1").status_code == 200
        leaked = client.get("/api/features/s3cret")
        assert leaked.status_code == 403 and "URL" in leaked.json()["error"]
        assert "s3cret" not in leaked.text
        # an admin key still works where keys travel in headers
        assert client.get("/api/features/c1", headers={"X-XP-Key": "s3cret"}).status_code == 200

"""Dashboard browser hardening (issue #13, low items; decision 0039), against a real (empty) chDB store.

- every response carries CSP (no inline script or style on the pages), X-Frame-Options: DENY,
  frame-ancestors 'none', Referrer-Policy: no-referrer and X-Content-Type-Options: nosniff;
- no token in URLs: ``?token=`` no longer authenticates; a browser signs in with a POST to /login and
  gets an HttpOnly SameSite=Strict cookie that authenticates pages, the API and exports; headers still work;
- a state-changing request from another site's page (foreign Origin) is refused;
- /quality/report/ before the first report: a 404 page that says so (no 500, no traceback);
- the pages and scripts put no token into a URL and have no inline script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
PATHS = [
    "/",
    "/health",
    "/quality",
    "/audit",
    "/api/audit",
    "/program",
    "/api/program",
    "/static/app.css",
    "/static/js/common.js",
    "/healthz",
]


def make_client(warehouse: Warehouse, home: Path, **tokens: str) -> TestClient:
    secrets: dict[str, Any] = {name: SecretStr(value) for name, value in tokens.items()}
    settings = DashboardSettings(home=home, clickhouse_url=None, store_wait_seconds=0, **secrets)
    return TestClient(create_app(settings, warehouse, lag_monitor=False), base_url="http://127.0.0.1:8200")


@pytest.fixture
def open_client(warehouse: Warehouse, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(warehouse, tmp_path / "xp-home") as client:
        yield client


@pytest.fixture
def token_client(warehouse: Warehouse, tmp_path: Path) -> Iterator[TestClient]:
    tokens = {"dashboard_read_tokens": "reader;=x", "dashboard_admin_tokens": "boss"}
    with make_client(warehouse, tmp_path / "xp-home", **tokens) as client:
        yield client


def assert_hardened(response: object, *, report: bool = False) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    script = re.search(r"script-src ([^;]*)", csp)
    assert script is not None
    if report:
        assert "sandbox" in csp  # inline allowed only inside an opaque-origin sandbox
    else:
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert script.group(1).split() == ["'self'"]


def test_every_response_carries_the_security_headers(open_client: TestClient) -> None:
    for path in [*PATHS, "/no-such-page", "/api/experiments/nope/results"]:
        assert_hardened(open_client.get(path))
    report = open_client.get("/quality/report/")
    assert_hardened(report, report=True)


def test_denials_and_login_pages_carry_them_too(token_client: TestClient) -> None:
    for path in ["/", "/api/audit", "/login"]:
        assert_hardened(token_client.get(path))
    assert_hardened(token_client.post("/api/admin/cache/clear", headers={"Origin": "http://evil.example"}))


def test_a_token_in_the_url_no_longer_authenticates(token_client: TestClient) -> None:
    assert token_client.get("/?token=reader;=x").status_code == 401
    assert token_client.get("/api/audit?token=boss").status_code == 401
    assert token_client.get("/api/experiments/x/export/daily.csv?token=reader;=x").status_code == 401
    assert token_client.get("/api/experiments/x/funnel?steps=a&token=reader;=x").status_code == 401
    assert token_client.get("/api/audit", headers={"Authorization": "Bearer reader;=x"}).status_code == 200
    assert token_client.get("/api/audit", headers={"X-XP-Key": "boss"}).status_code == 200


def test_a_page_without_a_token_shows_the_sign_in_form(token_client: TestClient) -> None:
    page = token_client.get("/audit?x=1")
    assert page.status_code == 401
    assert '<form method="post" action="/login"' in page.text
    assert 'name="next" value="/audit?x=1"' in page.text
    assert "<script" not in page.text


def test_signing_in_sets_an_httponly_samesite_strict_cookie(token_client: TestClient) -> None:
    wrong = token_client.post("/login", data={"token": "nope", "next": "/audit"}, follow_redirects=False)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    signed = token_client.post(
        "/login", data={"token": "reader;=x", "next": "/audit"}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/audit"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("xp_dashboard_token=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "reader" not in cookie  # encoded, and the token never appears in a URL
    assert token_client.get("/audit").status_code == 200
    assert token_client.get("/api/audit").status_code == 200
    assert token_client.get("/api/experiments/x/export/daily.csv").status_code in (200, 404)
    assert token_client.post("/api/admin/cache/clear").status_code == 403  # read-only token
    out = token_client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and "xp_dashboard_token=" in out.headers["set-cookie"]
    token_client.cookies.clear()
    assert token_client.get("/api/audit").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "audit"])
def test_sign_in_never_redirects_off_site(token_client: TestClient, target: str) -> None:
    signed = token_client.post("/login", data={"token": "boss", "next": target}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/"


def test_a_foreign_origin_cannot_change_state(open_client: TestClient, token_client: TestClient) -> None:
    evil = {"Origin": "http://evil.example"}
    assert open_client.post("/api/admin/cache/clear", headers=evil).status_code == 403
    cross_site = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}  # e.g. the sandboxed report
    assert open_client.post("/api/admin/cache/clear", headers=cross_site).status_code == 403
    same_site = {"Origin": "http://127.0.0.1:8200", "Sec-Fetch-Site": "same-site"}  # another port
    assert open_client.post("/api/admin/cache/clear", headers=same_site).status_code == 403
    # a browser's own form post under Referrer-Policy: no-referrer says Origin: null, same-origin
    own = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert open_client.post("/api/admin/cache/clear", headers=own).status_code == 200
    assert (
        open_client.post("/api/admin/cache/clear", headers={"Origin": "http://127.0.0.1:8200"}).status_code
        == 200
    )
    assert open_client.post("/api/admin/cache/clear").status_code == 200  # curl sends no Origin
    login = token_client.post("/login", data={"token": "boss"}, headers=evil, follow_redirects=False)
    assert login.status_code == 403 and "set-cookie" not in login.headers


def test_the_quality_report_before_the_first_run_is_a_clear_404(
    open_client: TestClient, tmp_path: Path
) -> None:
    for path in ["/quality/report/", "/quality/report/index.html"]:
        response = open_client.get(path)
        assert response.status_code == 404, response.text
        assert "No quality report yet" in response.text and "xp jobs run quality" in response.text
        assert "Traceback" not in response.text
    latest = tmp_path / "xp-home" / "reports" / "quality" / "latest"
    latest.mkdir(parents=True)
    (latest / "index.html").write_text("<html><title>Data quality</title></html>")
    response = open_client.get("/quality/report/")
    assert response.status_code == 200 and "Data quality" in response.text


def test_pages_and_scripts_put_no_token_in_urls_and_have_no_inline_script() -> None:
    for path in [*(DASHBOARDS / "static" / "js").glob("*.js"), *(DASHBOARDS / "templates").glob("*.html")]:
        text = path.read_text()
        assert "token=" not in text and "withToken" not in text, path
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path  # only <script src=...>
            assert not re.search(r"\son[a-z]+=", text), path  # no inline event handlers
            assert "style=" not in text, path


def test_an_unexpected_error_is_a_bare_500_with_the_headers(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dashboards.api

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(dashboards.api, "audit", broken)
    settings = DashboardSettings(home=tmp_path / "xp-home", clickhouse_url=None, store_wait_seconds=0)
    app = create_app(settings, warehouse, lag_monitor=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/audit")
    assert response.status_code == 500
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert_hardened(response)

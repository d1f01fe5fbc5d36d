"""Dashboard auth: loopback without tokens only; read vs admin per path; tokens from headers or cookie."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr

from dashboards.auth import AccessLevel, check_dashboard_bind, dashboard_keys, required_level
from dashboards.settings import DashboardSettings
from xpcore.errors import ConfigError


def settings(read: str = "", admin: str = "") -> DashboardSettings:
    return DashboardSettings(dashboard_read_tokens=SecretStr(read), dashboard_admin_tokens=SecretStr(admin))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_tokens(host: str) -> None:
    check_dashboard_bind(host, dashboard_keys(settings()))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_other_interfaces_need_tokens(host: str) -> None:
    with pytest.raises(ConfigError, match="XP_DASHBOARD_READ_TOKENS"):
        check_dashboard_bind(host, dashboard_keys(settings()))
    check_dashboard_bind(host, dashboard_keys(settings(read="r1")))
    check_dashboard_bind(host, dashboard_keys(settings(admin="a1")))


def test_token_levels() -> None:
    keys = dashboard_keys(settings(read="r1, r2", admin="a1"))
    assert keys.level("r2") is AccessLevel.CLIENT
    assert keys.level("a1") is AccessLevel.ADMIN
    assert keys.level("nope") is AccessLevel.NONE
    assert keys.level(None) is AccessLevel.NONE
    assert "r1" not in repr(keys)


def test_open_key_ring_is_admin_for_everyone() -> None:
    assert dashboard_keys(settings()).level(None) is AccessLevel.ADMIN


@pytest.mark.parametrize(
    ("path", "level"),
    [
        ("/healthz", AccessLevel.NONE),
        ("/static/app.css", AccessLevel.NONE),
        ("/", AccessLevel.CLIENT),
        ("/experiments/x", AccessLevel.CLIENT),
        ("/api/experiments/x/export/daily.csv", AccessLevel.CLIENT),
        ("/api/admin/cache/clear", AccessLevel.ADMIN),
    ],
)
def test_required_level(path: str, level: AccessLevel) -> None:
    assert required_level(path) is level


def test_serve_refuses_a_public_bind_without_tokens() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "dashboard", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "XP_HOME": "/nonexistent-xp-home"},
    )
    assert result.returncode == 2, result.stderr
    assert "XP_DASHBOARD_READ_TOKENS" in result.stderr
    assert "Traceback" not in result.stderr

"""`xp assign serve` as a real process: a GrowthBook SDK pointed at it assigns like the service does;
the CLI refuses a non-loopback bind without keys; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
from tests.unit.service.conftest import PAYLOAD, US_UNITS

pytestmark = pytest.mark.integration


def _xp(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "xpstream.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    import os

    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(PAYLOAD))
    (port,) = free_ports(1)
    env = {**os.environ, "XP_HOME": str(tmp_path / "home"), "XP_SERVICE_CLIENT_KEYS": "ck_test"}
    server = _xp(
        "assign", "serve", "--features", str(payload), "--port", str(port), "--no-exposures", env=env
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            assert server.poll() is None, server.communicate()[1]
            return False

    wait_until(healthy, timeout=30, interval=0.2, message="the service to start")
    try:
        yield url
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr
        assert "ck_test" not in stderr  # keys never logged


def test_growthbook_sdk_pointed_at_the_service_agrees_with_it(served: str) -> None:
    from growthbook import GrowthBook

    for unit in US_UNITS[:40]:
        # a copy: the SDK's destroy() clears the attributes dict it was given, in place (it emptied
        # the shared US_UNITS for later tests in the same process)
        gb = GrowthBook(api_host=served, client_key="ck_test", attributes=dict(unit))
        gb.load_features()
        request = urllib.request.Request(
            f"{served}/v1/assign",
            data=json.dumps({"attributes": unit, "expose": False}).encode(),
            headers={"Authorization": "Bearer ck_test", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            ours = json.loads(response.read())["features"]
        for key in PAYLOAD["features"]:
            sdk = gb.eval_feature(key)
            assert (sdk.value, sdk.source) == (ours[key]["value"], ours[key]["source"]), (key, unit)
        gb.destroy()


def test_wrong_client_key_is_refused(served: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{served}/api/features/not-a-key", timeout=5)
    assert raised.value.code == 401


def test_non_loopback_bind_without_keys_is_refused_in_one_line(tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(PAYLOAD))
    process = _xp("assign", "serve", "--host", "0.0.0.0", "--features", str(payload))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.strip().count("\n") == 0 and "refusing to bind 0.0.0.0 without keys" in stderr

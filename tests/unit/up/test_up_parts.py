"""Pure parts of `xp up`: health report, settings, bind and port checks, URLs."""

from __future__ import annotations

import socket

import pytest
from pydantic import SecretStr

from xpcore.errors import ConfigError
from xpstream.up.admin import check_admin_bind, is_loopback
from xpstream.up.component_health import Health
from xpstream.up.components import check_port, url_of
from xpstream.up.runner import schedules_from
from xpstream.up.settings import UpSettings


def test_health_is_503_while_any_component_is_not_ok() -> None:
    health = Health()
    health.set("api", "ok", url="http://127.0.0.1:8210")
    health.set("dashboard", "disabled", "not built")
    health.set("stream", "starting")
    status, body = health.report()
    assert status == 503 and body["status"] == "failing"
    health.set("stream", "ok", "group xp-stream", restarts=0)
    status, body = health.report()
    assert status == 200 and body["status"] == "ok"
    assert body["components"]["api"]["url"] == "http://127.0.0.1:8210"
    assert body["components"]["dashboard"] == {
        **body["components"]["dashboard"],
        "ok": True,
        "status": "disabled",
    }
    health.set("stream", "failing", "Kafka unreachable", restarts=1)
    status, body = health.report()
    assert status == 503
    assert body["components"]["stream"]["detail"] == "Kafka unreachable"
    assert body["components"]["stream"]["restarts"] == 1


def test_components_and_schedules_are_validated_with_the_setting_named() -> None:
    assert UpSettings(up_components="service, stream").components() == ["stream", "service"]
    with pytest.raises(ConfigError, match=r"XP_UP_COMPONENTS: unknown component.*workers"):
        UpSettings(up_components="stream,workers").components()
    jobs = [s.job for s in schedules_from(UpSettings(schedule_lake="", schedule_etl="0 3 * * *"))]
    assert jobs == ["quality", "unit-values", "stats", "etl", "export"]
    with pytest.raises(ConfigError, match="XP_SCHEDULE_STATS="):
        schedules_from(UpSettings(schedule_stats="every 5 minutes"))


def test_the_store_is_not_served_off_loopback_without_tokens() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    check_admin_bind("127.0.0.1", [])
    check_admin_bind("0.0.0.0", ["token"])
    with pytest.raises(ConfigError, match="XP_UP_TOKENS"):
        check_admin_bind("0.0.0.0", [])
    assert UpSettings(up_tokens=SecretStr(" a, ,b ")).tokens() == ["a", "b"]


def test_a_port_in_use_fails_before_start_naming_the_setting() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port} \(XP_UP_PORT\) is in use"):
            check_port("127.0.0.1", port, "XP_UP_PORT")


def test_urls_of_wildcard_binds_point_at_loopback() -> None:
    assert url_of("0.0.0.0", 8210) == "http://127.0.0.1:8210"
    assert url_of("::", 8210) == "http://[::1]:8210"
    assert url_of("10.0.0.5", 8100) == "http://10.0.0.5:8100"


def test_the_stream_is_healthy_only_once_its_state_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor reports "starting" while the worker restores its state, "ok" from ``on_ready``."""
    import threading
    from collections.abc import Callable

    import pipelines.worker
    from pipelines.stream_report import StreamReport
    from xpstream.up.components import StreamSupervisor

    health = Health()
    seen: list[str | None] = []
    restored = threading.Event()

    def fake_worker(
        settings: UpSettings,
        *,
        stop_event: threading.Event,
        on_ready: Callable[[], None] | None = None,
        **_: object,
    ) -> StreamReport:
        seen.append(health.status("stream"))  # while restoring
        assert on_ready is not None
        on_ready()
        seen.append(health.status("stream"))  # consuming
        restored.set()
        stop_event.wait(5)
        return StreamReport()

    monkeypatch.setattr(pipelines.worker, "run_worker", fake_worker)
    supervisor = StreamSupervisor(UpSettings(), health, restart_max_seconds=1)
    supervisor.start()
    assert restored.wait(5)
    assert supervisor.stop(5)
    assert seen == ["starting", "ok"]
    assert health.status("stream") == "stopping"

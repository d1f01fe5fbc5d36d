"""`$XP_HOME/run/xp-up.json`: how `xp up status` and `xp up stop` find a running `xp up`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from xpstream.up.pidfile import (
    UpRecord,
    pid_alive,
    read_record,
    record_path,
    remove_record,
    stop_process,
    write_record,
)


def test_a_record_of_a_live_process_is_read_back_private(tmp_path: Path) -> None:
    record = UpRecord(os.getpid(), "2026-12-05T07:00:00+00:00", "http://127.0.0.1:8210/healthz")
    path = write_record(tmp_path, record)
    assert read_record(tmp_path) == record
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_record_whose_process_is_gone_is_not_running(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    write_record(tmp_path, UpRecord(child.pid, "t", "u"))
    assert not pid_alive(child.pid)
    assert read_record(tmp_path) is None


def test_garbage_is_not_running(tmp_path: Path) -> None:
    path = record_path(tmp_path)
    path.parent.mkdir(parents=True)
    for text in ("", "{", '{"pid": "x"}', '{"pid": 0, "started_at": "t", "health_url": "u"}', "[]"):
        path.write_text(text)
        assert read_record(tmp_path) is None, text


def test_only_the_writer_removes_its_record(tmp_path: Path) -> None:
    write_record(tmp_path, UpRecord(os.getpid(), "t", "u"))
    remove_record(tmp_path, os.getpid() + 1)  # an older `xp up` stopping late leaves the newer one's file
    assert record_path(tmp_path).exists()
    remove_record(tmp_path, os.getpid())
    assert not record_path(tmp_path).exists()


def test_stop_sends_sigterm_and_waits_for_the_exit() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def alive(pid: int) -> bool:
        return child.poll() is None  # reaps the child, as its parent must

    assert stop_process(child.pid, 30, alive=alive) is True
    assert child.returncode == -15


def test_stop_gives_up_after_the_timeout_on_a_process_that_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); "
        "time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline()  # the handler is in place
        now = [0.0]

        def sleep(seconds: float) -> None:
            now[0] += seconds

        assert stop_process(child.pid, 5, clock=lambda: now[0], sleep=sleep) is False
        assert child.poll() is None and now[0] >= 5
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_is_not_taken_for_xp_up() -> None:
    from xpstream.up.pidfile import looks_like_xp_up

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not looks_like_xp_up(other.pid)  # a live process, but not an xp up: never SIGTERMed
    finally:
        other.kill()
        other.wait()
    assert not looks_like_xp_up(other.pid)  # gone


def test_stop_refuses_a_record_whose_pid_is_another_program(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_record(tmp_path, UpRecord(other.pid, "t", "http://127.0.0.1:9/healthz"))
        env = {**os.environ, "XP_HOME": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "xpstream.cli", "up", "stop", "--timeout", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1 and "not an xp up" in result.stderr, result.stderr
        assert other.poll() is None  # still running: it was not signalled
    finally:
        other.kill()
        other.wait()

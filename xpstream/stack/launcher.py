"""Start, stop and inspect the local single-node Kafka broker (KRaft) under ``$XP_HOME/kafka``.

Used by `xp stack up|down|status` and by the tests' session fixture, so both run the same broker the
same way. Every failure a person can fix is one :class:`~xpcore.errors.StackError` line.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xpcore.config import StackSettings
from xpcore.errors import StackError, XpError
from xpcore.kafka.credentials import (
    CREDENTIALS_FILE,
    LocalCredentials,
    load_local_credentials,
    write_private,
)
from xpcore.kafka.principals import ADMIN
from xpstream.stack.layout import (
    FALLBACK_LOG4J,
    HOST,
    KAFKA_VERSION,
    BrokerConfig,
    KafkaLayout,
    broker_command,
    format_arguments,
    format_command,
    is_broker_command,
    new_cluster_id,
    render_server_properties,
)
from xpstream.stack.process import (
    PidState,
    PidStatus,
    classify_pid,
    last_error_line,
    port_accepts,
    port_is_free,
    process_argv,
    read_new_lines,
    terminate,
)
from xpstream.stack.tls import ensure_tls_files

__all__ = [
    "StartResult",
    "StopResult",
    "kafka_status",
    "layout_for",
    "local_kafka_settings",
    "stack_status",
    "start_kafka",
    "stop_kafka",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartResult:
    pid: int
    bootstrap: str
    already_running: bool
    formatted: bool
    seconds: float
    topics_created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "bootstrap": self.bootstrap,
            "already_running": self.already_running,
            "formatted": self.formatted,
            "seconds": round(self.seconds, 2),
            "topics_created": self.topics_created,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    pid: int | None = None
    forced: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"was_running": self.was_running, "pid": self.pid, "forced": self.forced, "notes": self.notes}


def layout_for(settings: StackSettings) -> KafkaLayout:
    return KafkaLayout.create(settings.home, settings.kafka_lib_dir)


def local_kafka_settings(settings: StackSettings) -> StackSettings:
    """The same settings pointed at the local broker, whatever the bootstrap says: SASL/SCRAM on loopback
    with the generated credentials of this XP_HOME (``$XP_HOME/secrets/kafka``), no TLS."""
    # Explicit credentials are cleared (None, not a password): the generated ones are used instead.
    return settings.model_copy(
        update={
            "kafka_bootstrap": f"{HOST}:{settings.kafka_port}",
            "kafka_security_protocol": "PLAINTEXT",
            "kafka_sasl_mechanism": None,
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,  # nosec B105
            "kafka_ssl_ca_location": None,
            "kafka_ssl_certificate_location": None,
            "kafka_ssl_key_location": None,
            "kafka_ssl_key_password": None,  # nosec B105
            "kafka_credentials_dir": layout_for(settings).secrets_dir,
        }
    )


def _credentials_and_new(layout: KafkaLayout, bootstrap: str) -> tuple[LocalCredentials, frozenset[str]]:
    """This XP_HOME's broker credentials (generated the first time, completed and saved 0600) and the
    roles whose password was generated just now."""
    credentials = load_local_credentials(layout.secrets_dir)
    if credentials is None:
        if layout.formatted_marker.exists():
            raise StackError(
                f"the Kafka storage in {layout.data_dir} was formatted before the broker required SASL"
                f" and has no credentials in {layout.secrets_dir}: run `xp stack down`, remove"
                f" {layout.kafka_dir} (its topics are lost) and run `xp stack up` again"
            )
        credentials = LocalCredentials.generate(bootstrap)
    before = set(credentials.passwords)
    credentials = credentials.with_missing_roles().with_bootstrap(bootstrap)
    credentials.save(layout.secrets_dir)
    return credentials, frozenset(set(credentials.passwords) - before)


def _secure(
    local: StackSettings, credentials: LocalCredentials, renewed: frozenset[str] = frozenset()
) -> None:
    """The role principals' SCRAM users (admin's comes from the format), the ACLs of the topics and the
    registry signing key."""
    from xpcore.kafka.admin import ensure_acls, ensure_scram_users
    from xpcore.registry_signing import load_keyring

    others = {role: password for role, password in credentials.passwords.items() if role != ADMIN}
    try:
        ensure_scram_users(local, others, credentials.mechanism, renewed=renewed)
        ensure_acls(local)
        load_keyring(local, create=True)  # the registry signing key, if this XP_HOME has none yet
    except XpError as error:
        raise StackError(f"the Kafka broker runs but securing it failed: {error}") from error


def _pid_state(layout: KafkaLayout) -> PidState:
    try:
        text: str | None = layout.pid_file.read_text()
    except FileNotFoundError:
        text = None
    return classify_pid(text, process_argv, lambda argv: is_broker_command(argv, layout))


@contextlib.contextmanager
def _stack_lock(layout: KafkaLayout) -> Iterator[None]:
    """One `xp stack up/down` at a time per XP_HOME."""
    layout.kafka_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    layout.kafka_dir.chmod(0o700)  # server.properties holds the admin password; data holds SCRAM hashes
    with layout.lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_java(java: str) -> str:
    found = shutil.which(java)
    if found is None:
        raise StackError(
            f"java not found ({java!r}): install a Java 17 JDK (e.g. apt-get install openjdk-17-jdk-headless)"
            " or set XP_KAFKA_JAVA"
        )
    return found


def _check_jars(layout: KafkaLayout) -> None:
    if not any(layout.lib_dir.glob("kafka_2.13-*.jar")):
        raise StackError(
            f"Kafka jars not found in {layout.lib_dir}: run `make setup` (or set XP_KAFKA_LIB_DIR)"
        )


def _check_ports(settings: StackSettings) -> None:
    ports = [
        (settings.kafka_port, "XP_KAFKA_PORT"),
        (settings.kafka_controller_port, "XP_KAFKA_CONTROLLER_PORT"),
    ]
    if settings.kafka_tls_port is not None:
        ports.append((settings.kafka_tls_port, "XP_KAFKA_TLS_PORT"))
    for port, setting in ports:
        if not port_is_free(HOST, port):
            raise StackError(
                f"port {port} on {HOST} is already in use by another process"
                f" (not this XP_HOME's broker): stop it or choose another port with {setting}"
            )
    if len({port for port, _ in ports}) < len(ports):
        raise StackError(f"{', '.join(name for _, name in ports)} must all differ")


def _error_detail(layout: KafkaLayout, offsets: dict[Path, int]) -> tuple[str, Path]:
    """``": <last meaningful error line>"`` (or ``""``) and the log file it came from."""
    for path in (layout.server_log, layout.stdout_log):
        detail = last_error_line(read_new_lines(path, offsets.get(path, 0)))
        if detail:
            return f": {detail}", path
    return "", layout.server_log


def _log_offsets(layout: KafkaLayout) -> dict[Path, int]:
    return {
        path: path.stat().st_size if path.exists() else 0 for path in (layout.server_log, layout.stdout_log)
    }


def _format_storage(java: str, layout: KafkaLayout, credentials: LocalCredentials) -> None:
    offsets = _log_offsets(layout)
    cluster_id = new_cluster_id()
    admin = f"{credentials.mechanism}=[name={ADMIN},password={credentials.passwords[ADMIN]}]"
    write_private(layout.format_args_file, "\n".join(format_arguments(layout, cluster_id, admin)) + "\n")
    try:
        with layout.stdout_log.open("ab") as out:
            result = subprocess.run(
                format_command(java, layout, cluster_id),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
    finally:
        layout.format_args_file.unlink(missing_ok=True)
    if result.returncode != 0 or not layout.formatted_marker.exists():
        detail, log = _error_detail(layout, offsets)
        raise StackError(f"formatting Kafka storage in {layout.data_dir} failed{detail} (see {log})")


def _wait_until_serving(
    settings: StackSettings,
    layout: KafkaLayout,
    pid: int,
    child: subprocess.Popen[bytes] | None,
    offsets: dict[Path, int],
) -> None:
    from xpcore.kafka.admin import broker_count

    deadline = time.monotonic() + settings.kafka_start_timeout
    while True:
        exit_code = child.poll() if child is not None else None
        if exit_code is not None or (child is None and process_argv(pid) is None):
            layout.pid_file.unlink(missing_ok=True)
            code = f" with code {exit_code}" if exit_code is not None else ""
            detail, log = _error_detail(layout, offsets)
            raise StackError(f"the Kafka broker exited during start{code}{detail} (see {log})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if (
            port_accepts(HOST, settings.kafka_port)
            and broker_count(settings, timeout=min(2.0, remaining)) > 0
        ):
            return
        time.sleep(0.2)
    terminate(pid, settings.kafka_stop_timeout)
    layout.pid_file.unlink(missing_ok=True)
    detail, log = _error_detail(layout, offsets)
    raise StackError(
        f"the Kafka broker did not serve on {settings.kafka_bootstrap} within"
        f" {settings.kafka_start_timeout:g}s, so it was stopped{detail} (see {log};"
        " raise XP_KAFKA_START_TIMEOUT on a slow machine)"
    )


def start_kafka(settings: StackSettings) -> StartResult:
    """Start the local broker (formatting storage the first time) and create the topics; idempotent."""
    from xpcore.kafka.topics import ensure_topics

    began = time.monotonic()
    local = local_kafka_settings(settings)
    layout = layout_for(settings)
    notes: list[str] = []
    with _stack_lock(layout):
        state = _pid_state(layout)
        if state.status is PidStatus.RUNNING and state.pid is not None:
            _wait_until_serving(local, layout, state.pid, None, _log_offsets(layout))
            _secure(local, *_credentials_and_new(layout, local.kafka_bootstrap))
            created = _ensure(ensure_topics, local)
            return StartResult(
                state.pid, local.kafka_bootstrap, True, False, time.monotonic() - began, created
            )
        if state.status is PidStatus.STALE:
            layout.pid_file.unlink(missing_ok=True)
            notes.append(f"removed a stale pid file ({state.reason})")
            logger.info("removed stale pid file: %s", state.reason)
        java = _find_java(settings.kafka_java)
        _check_jars(layout)
        _check_ports(local)
        for directory in (layout.data_dir, layout.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if layout.log4j_file.parent == layout.kafka_dir:
            layout.log4j_file.write_text(FALLBACK_LOG4J)
        credentials, renewed = _credentials_and_new(layout, local.kafka_bootstrap)
        tls = ensure_tls_files(layout.tls_dir) if local.kafka_tls_port is not None else None
        config = BrokerConfig(
            local.kafka_port,
            local.kafka_controller_port,
            layout.data_dir,
            local.topic_partitions,
            admin_password=credentials.passwords[ADMIN],
            mechanism=credentials.mechanism,
            tls_port=local.kafka_tls_port,
            tls_keystore=tls.broker_pem if tls else None,
            tls_truststore=tls.ca_cert if tls else None,
        )
        write_private(layout.properties_file, render_server_properties(config))
        formatted = not layout.formatted_marker.exists()
        if formatted:
            _format_storage(java, layout, credentials)
        offsets = _log_offsets(layout)
        with layout.stdout_log.open("ab") as out:
            child = subprocess.Popen(
                broker_command(java, layout, settings.kafka_heap),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=layout.kafka_dir,
                start_new_session=True,
            )
        layout.pid_file.write_text(f"{child.pid}\n")
        _wait_until_serving(local, layout, child.pid, child, offsets)
        _secure(local, credentials, renewed)
        created = _ensure(ensure_topics, local)
        return StartResult(
            child.pid, local.kafka_bootstrap, False, formatted, time.monotonic() - began, created, notes
        )


def _ensure(ensure_topics: Any, local: StackSettings) -> list[str]:
    try:
        created: list[str] = ensure_topics(local)
    except XpError as error:
        raise StackError(f"the Kafka broker runs but creating topics failed: {error}") from error
    return created


def stop_kafka(settings: StackSettings) -> StopResult:
    """Stop the local broker: SIGTERM, wait ``kafka_stop_timeout``, then SIGKILL; idempotent."""
    layout = layout_for(settings)
    if not layout.kafka_dir.exists():
        return StopResult(False)
    with _stack_lock(layout):
        state = _pid_state(layout)
        if state.status is PidStatus.ABSENT:
            return StopResult(False)
        if state.status is PidStatus.STALE:
            layout.pid_file.unlink(missing_ok=True)
            return StopResult(False, state.pid, notes=[f"removed a stale pid file ({state.reason})"])
        assert state.pid is not None
        forced = terminate(state.pid, settings.kafka_stop_timeout)
        if process_argv(state.pid) is not None:
            raise StackError(f"the Kafka broker (pid {state.pid}) did not stop, even after SIGKILL")
        layout.pid_file.unlink(missing_ok=True)
        return StopResult(True, state.pid, forced)


def kafka_status(settings: StackSettings, *, probe: bool = True) -> dict[str, Any]:
    """The local broker: running (our process lives), serving (it answers metadata), where its files are."""
    local = local_kafka_settings(settings)
    layout = layout_for(settings)
    state = _pid_state(layout)
    running = state.status is PidStatus.RUNNING
    serving: bool | None = None
    if probe and running:
        from xpcore.kafka.admin import broker_count

        serving = broker_count(local, timeout=3.0) > 0
    return {
        "bootstrap": local.kafka_bootstrap,
        "running": running,
        "serving": serving,
        "pid": state.pid if running else None,
        "stale_pid_file": state.status is PidStatus.STALE,
        "version": KAFKA_VERSION,
        "controller": f"{HOST}:{local.kafka_controller_port}",
        "data_dir": str(layout.data_dir),
        "log_file": str(layout.server_log),
        "formatted": layout.formatted_marker.exists(),
        "security": "SASL_PLAINTEXT (SCRAM-SHA-512) with ACLs, loopback only",
        "credentials_file": str(layout.secrets_dir / CREDENTIALS_FILE),
    }


def stack_status(settings: StackSettings, *, probe: bool = True) -> dict[str, Any]:
    """``xp stack status --format json``: the broker and where the warehouse is."""
    kind = "clickhouse" if settings.clickhouse_url else "chdb"
    return {
        "kafka": kafka_status(settings, probe=probe),
        "warehouse": {"kind": kind, "location": settings.location},
    }

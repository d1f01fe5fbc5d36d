"""Starting the Flink job: its spec (SQL + Flink configuration) written, ``.venv-flink``'s Python started.

The job runs as a child process in the same process group as ``xp stream run`` (a ``kill -9`` of the
group ends both; the job also dies with its parent: ``job.py`` asks for SIGKILL on the parent's death).
Checkpoints go to ``FlinkSettings.checkpoint_location``; a start resumes from the newest completed
checkpoint found there (:func:`latest_checkpoint`), so the sources' offsets, the deduplication state and
the sink's pending transactions come back as they were at that checkpoint.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from pipelines.flink.attribution_sql import AttributionParams
from pipelines.flink.job_sql import SHADED_PLAIN, SHADED_SCRAM, FlinkJobSpec, job_statements
from xpcore.errors import ConfigError
from xpcore.kafka.principals import FLINK, FLINK_TRANSACTIONAL_IDS
from xpcore.kafka.topics import EVENTS, EXPOSURES, FLINK_ATTRIBUTIONS, FLINK_EVENTS, FLINK_EXPOSURES

if TYPE_CHECKING:
    from pipelines.flink.settings import FlinkSettings
    from pipelines.kernel import ValidationRules

__all__ = ["FlinkJob", "flink_config", "job_spec", "kafka_properties", "latest_checkpoint", "registry_lists"]

logger = logging.getLogger(__name__)

JOB_SCRIPT = Path(__file__).with_name("job.py")


def kafka_properties(client: dict[str, str]) -> dict[str, str]:
    """librdkafka settings (``KafkaSettings.confluent_config``) → the Java client's properties."""
    properties = {
        "bootstrap.servers": client["bootstrap.servers"],
        "security.protocol": client["security.protocol"],
    }
    mechanism = client.get("sasl.mechanism")
    if mechanism:
        properties["sasl.mechanism"] = mechanism
        module = SHADED_PLAIN if mechanism == "PLAIN" else SHADED_SCRAM
        username, password = client.get("sasl.username", ""), client.get("sasl.password", "")
        if '"' in username + password or "\\" in username + password:
            raise ConfigError(
                "the Kafka SASL username or password holds a quote or backslash: not usable by Flink"
            )
        properties["sasl.jaas.config"] = f'{module} required username="{username}" password="{password}";'
    ca = client.get("ssl.ca.location")
    if ca:
        properties["ssl.truststore.type"] = "PEM"
        properties["ssl.truststore.location"] = ca
    return properties


Windows: TypeAlias = Mapping[tuple[str, str], timedelta | None]


def attribution_params(settings: FlinkSettings, windows: Windows) -> AttributionParams:
    """The kernel's attribution settings for the job's attribution function (``AttributionState``'s)."""
    if settings.flink_jvm_attribution and settings.stream_hold_seconds >= 86_400:
        raise ConfigError(
            "XP_STREAM_HOLD_SECONDS must stay under a day with the JVM attribution (its held events' state "
            "expires after 24 h idle): set XP_FLINK_JVM_ATTRIBUTION=false"
        )
    if settings.flink_jvm_attribution and settings.stream_dedup_retention_seconds > 86_400:
        raise ConfigError(
            "XP_STREAM_DEDUP_RETENTION_SECONDS must stay within a day with the JVM attribution (the ids it "
            "has seen per unit expire after 24 h idle): set XP_FLINK_JVM_ATTRIBUTION=false"
        )
    return AttributionParams(
        hold=timedelta(seconds=settings.stream_hold_seconds),
        default_window=timedelta(seconds=settings.stream_attribution_window_seconds),
        windows=dict(windows),
        max_held_per_unit=settings.flink_max_held_per_unit,
        dedup_retention=timedelta(seconds=settings.stream_dedup_retention_seconds),
    )


def job_spec(settings: FlinkSettings, rules: ValidationRules, windows: Windows | None = None) -> FlinkJobSpec:
    """The job's parameters from the worker's settings and the registry view it validates with
    (``windows``: the registry's metric windows, ``RegistryView.attribution_windows``)."""
    group = settings.stream_group_id
    return FlinkJobSpec(
        exposures_topic=settings.topic(EXPOSURES),
        events_topic=settings.topic(EVENTS),
        exposures_handoff=settings.topic(FLINK_EXPOSURES),
        events_handoff=settings.topic(FLINK_EVENTS),
        kafka_properties=kafka_properties(settings.confluent_config(FLINK)),
        group_id=f"{group}-flink",
        transactional_id_prefix=f"{FLINK_TRANSACTIONAL_IDS}{settings.topic_prefix}{group}-",
        max_future_skew_seconds=int(rules.max_future_skew.total_seconds()),
        max_lateness_seconds=int(rules.max_lateness.total_seconds()),
        dedup_retention_seconds=int(settings.stream_dedup_retention_seconds),
        max_record_bytes=settings.max_record_bytes,
        max_abs_metric_value=settings.max_abs_metric_value,
        known_variations=rules.known_variations,
        known_event_names=rules.known_event_names,
        attributions_handoff=settings.topic(FLINK_ATTRIBUTIONS) if settings.flink_jvm_attribution else None,
        attribution=attribution_params(settings, windows or {}),
    )


def registry_lists(rules: ValidationRules, windows: Windows | None = None) -> tuple[object, object, object]:
    """What of the worker's rules (and metric windows) the job's SQL holds (so a change needs a new job)."""
    variations = rules.known_variations
    return (None if variations is None else dict(variations), rules.known_event_names, dict(windows or {}))


def latest_checkpoint(location: str) -> str | None:
    """The newest completed checkpoint (``<job id>/chk-<n>`` holding ``_metadata``) under a local
    ``location``; None when there is none (or the location is not a local path)."""
    if "://" in location and not location.startswith("file://"):
        return None
    root = Path(location.removeprefix("file://"))
    found = [metadata.parent for metadata in root.glob("*/chk-*/_metadata") if metadata.is_file()]
    if not found:
        return None
    newest = max(found, key=lambda path: (path.joinpath("_metadata").stat().st_mtime, path.name))
    return str(newest)


def flink_config(
    settings: FlinkSettings, restore_from: str | None, *, cluster: bool = False
) -> dict[str, str]:
    """The Flink configuration of the job (set on its TableEnvironment). ``cluster``: for a Flink
    cluster, whose image has the jars in /opt/flink/lib and whose operator restores (deploy/flink/)."""
    location = settings.checkpoint_location
    if "://" not in location:
        location = Path(location).resolve().as_uri()
    interval_ms = int(settings.flink_checkpoint_interval_seconds * 1000)
    config = {"pipeline.name": f"xpstream {settings.stream_group_id}"}
    if not cluster:
        jars = sorted(settings.jars_dir.glob("*.jar"))
        if not jars:
            raise ConfigError(f"no jars in {settings.jars_dir}: run `make flink`")
        config["pipeline.jars"] = ";".join(jar.resolve().as_uri() for jar in jars)
    config |= {
        "parallelism.default": str(settings.flink_parallelism),
        "table.local-time-zone": "UTC",
        "table.exec.state.ttl": f"{int(settings.stream_dedup_retention_seconds * 1000)} ms",
        "execution.checkpointing.interval": f"{interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": location,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
        "state.backend.type": "hashmap",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2 s",
    }
    if cluster:  # the operator's savepoints and its restart policy take over
        for key in ("restart-strategy.type", "restart-strategy.fixed-delay.attempts"):
            config.pop(key)
        config.pop("restart-strategy.fixed-delay.delay")
    if restore_from is not None:
        config["execution.state-recovery.path"] = restore_from
    return config


def job_document(
    settings: FlinkSettings,
    rules: ValidationRules,
    restore_from: str | None,
    *,
    cluster: bool,
    windows: Windows | None = None,
) -> str:
    """The job's spec as JSON: its Flink configuration, DDL and INSERTs (holds the Kafka password)."""
    ddl, inserts = job_statements(job_spec(settings, rules, windows))
    spec = {"config": flink_config(settings, restore_from, cluster=cluster), "ddl": ddl, "inserts": inserts}
    return json.dumps(spec, indent=1)


def main(argv: list[str]) -> int:
    """``python -m pipelines.flink.launcher OUT.json``: the job spec for a Flink cluster (deploy/flink/),
    from the ``XP_*`` settings and the registry (file or topic) as the worker reads them."""
    from pipelines.flink.settings import FlinkSettings
    from pipelines.worker_setup import StreamTopics, build_processor, open_registry
    from xpcore.config import load_settings
    from xpcore.kafka.credentials import write_private

    if len(argv) != 1:
        sys.stderr.write("usage: python -m pipelines.flink.launcher OUT.json\n")
        return 2
    settings = load_settings(FlinkSettings)
    registry, follower = open_registry(settings)
    if follower is not None:
        follower.stop()
    processor = build_processor(settings, StreamTopics.of(settings), registry)  # the worker's own checks
    document = job_document(
        settings, processor.rules, None, cluster=True, windows=processor.registry.attribution_windows
    )
    write_private(Path(argv[0]), document)
    return 0


class FlinkJob:
    """The job's process: started with :meth:`start`, watched with :meth:`alive`, ended with :meth:`stop`."""

    def __init__(
        self, settings: FlinkSettings, rules: ValidationRules, windows: Windows | None = None
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.windows: dict[tuple[str, str], timedelta | None] = dict(windows or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.directory = settings.home / "flink"
        self.log_path = self.directory / "job.log"

    def start(self) -> None:
        from xpcore.kafka.credentials import write_private

        python = self.settings.python
        if not python.exists():
            raise ConfigError(f"{python} not found: run `make flink` (PyFlink's own environment)")
        restore_from = latest_checkpoint(self.settings.checkpoint_location)
        document = job_document(self.settings, self.rules, restore_from, cluster=False, windows=self.windows)
        spec_path = write_private(self.directory / "job-spec.json", document)  # holds the password
        self.directory.mkdir(parents=True, exist_ok=True)
        logger.info(
            "starting the Flink job", extra={"restore_from": restore_from or "", "log": str(self.log_path)}
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(python), str(JOB_SCRIPT), str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def follow(self, rules: ValidationRules, windows: Windows | None = None) -> bool:
        """Follow a registry change: when the job's lists (experiments/variations, event names) differ
        from ``rules``', stop the job and start it again from its newest checkpoint with the new lists
        (offsets, dedup state and pending transactions come back with it; records after that
        checkpoint are judged again, with the new lists). True when it restarted."""
        if windows is None:
            windows = self.windows
        if registry_lists(rules, windows) == registry_lists(self.rules, self.windows):
            self.rules = rules
            return False
        logger.info("the registry changed: restarting the Flink job from its newest checkpoint")
        self.stop()
        self.rules, self.windows = rules, dict(windows)
        self.start()
        return True

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the job to end (SIGTERM), then kill it; the next start resumes from its last checkpoint."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

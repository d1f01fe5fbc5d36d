"""The Flink runner next to the Kafka runner, same run, same records: parallelism 1 and 2.

Starts its own secured broker (or uses ``--bootstrap``); for each run, produces the records of
bench_stream.py to topics of its own (not timed), then runs, interleaved, each from a fresh group and a
fresh chDB store: ``--runner kafka``
(``run_worker``), ``--runner flink`` with ``XP_FLINK_PARALLELISM=1`` and with ``2`` (trust mode, decision
0105; ``--with-baseline``: also p=1 in check mode). Per run: records
loaded, the loader's rate (records / ``active_seconds``: first batch in hand → last commit), and the
whole run's wall seconds (for Flink: the JVM and mini-cluster start, the job's checkpoints, the loader;
the ``--until-idle`` tail excluded) with its rate, and the CPU seconds of the run (this process and the
job's processes, user + system; the broker's not included). Needs ``make flink``. Run::

    .venv/bin/python bench/bench_stream_flink.py [--units 20000] [--events-per-unit 4] [--repeat 2]
        [--with-baseline]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._broker import bench_broker
from bench.bench_stream import REGISTRY, produce
from xpcore.config import KafkaSettings

UNTIL_IDLE = 1.0


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the Flink job's Python and JVM)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def loader_cpu_seconds() -> float:
    """User + system CPU of this process alone: the loader (kernel, Kafka clients, chDB's inserts), not
    the Flink job (a child process)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (/proc/stat: all processes, other sessions' too)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def one_run(
    runner: str,
    parallelism: int,
    home: Path,
    kafka: KafkaSettings,
    registry: Path,
    attribution: str = "trust",
) -> dict[str, Any]:
    cpu_before, machine_before = cpu_seconds(), machine_cpu_seconds()
    loader_before = loader_cpu_seconds()
    common: dict[str, Any] = {
        "home": home,
        "kafka_bootstrap": kafka.kafka_bootstrap,
        "topic_prefix": kafka.topic_prefix,
        "stream_registry_file": registry,
        "stream_batch_size": 20_000,
        "stream_group_id": f"xp-bench-{runner}-{uuid.uuid4().hex[:6]}",
    }
    if runner == "kafka":
        from pipelines.worker import run_worker
        from xpcore.config import StreamSettings

        report = run_worker(StreamSettings(**common), until_idle=UNTIL_IDLE)
    else:
        from pipelines.flink.runner import run_flink_worker
        from pipelines.flink.settings import FlinkSettings

        settings = FlinkSettings(
            **common,
            flink_parallelism=parallelism,
            flink_checkpoint_interval_seconds=1.0,
            flink_jvm_attribution=attribution != "off",
            flink_attribution="check" if attribution == "check" else "trust",
        )
        report = run_flink_worker(settings, until_idle=UNTIL_IDLE)
        # the loader waits one checkpoint interval + 1 s more to be sure it is drained
        report.seconds -= settings.flink_checkpoint_interval_seconds + 1.0
    wall = max(report.seconds - UNTIL_IDLE, 1e-9)
    return {
        "runner": runner if runner == "kafka" else f"flink p={parallelism} {attribution}",
        "loaded": report.exposures + report.events,
        "loader_records_per_s": round(report.consumed / report.active_seconds)
        if report.active_seconds
        else 0,
        "wall_seconds": round(wall, 2),
        "wall_records_per_s": round(report.consumed / wall),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 1),
        "loader_cpu_seconds": round(loader_cpu_seconds() - loader_before, 2),
        "machine_cpu_seconds": round(machine_cpu_seconds() - machine_before, 1),
        "verdicts": dict(report.verdicts),
        "attributed": report.attributed,
        "attributions": dict(report.attributions),
        "stage_seconds": {k: round(v, 2) for k, v in report.stage_seconds.items()},
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--events-per-unit", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument(
        "--with-baseline",
        action="store_true",
        help="also run flink p=1 in check mode (XP_FLINK_ATTRIBUTION=check: the kernel attributes and "
        "its rows are loaded; the baseline of trust mode, decision 0105)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from xpcore.kafka.topics import ensure_topics

    with (
        tempfile.TemporaryDirectory(prefix="xp-bench-flink-") as tmp,
        bench_broker(Path(tmp), args.bootstrap) as bootstrap,
    ):
        root = Path(tmp)
        registry = root / "registry.json"
        registry.write_text(json.dumps(REGISTRY))
        for repeat in range(args.repeat):
            runs = [("kafka", 1, "trust"), ("flink", 1, "trust"), ("flink", 2, "trust")]
            if args.with_baseline:  # check mode (the kernel attributes, its rows loaded), same run
                runs.append(("flink", 1, "check"))
            for runner, parallelism, attribution in runs:
                # Topics of its own per run (the same records, produced again, not timed): the hand-off
                # topics belong to a topic prefix, and a second Flink run would read the first's too.
                kafka = KafkaSettings(
                    kafka_bootstrap=bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}."
                )
                ensure_topics(kafka)
                total = produce(kafka, args.units, args.events_per_unit, seed=7)
                home = root / f"home-{runner}-{parallelism}-{attribution}-{repeat}"
                figures = {
                    "records": total,
                    **one_run(runner, parallelism, home, kafka, registry, attribution),
                }
                print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()

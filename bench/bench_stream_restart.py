"""A worker's restart on a populated store: ``xp stream run`` from start to its first records' turn.

Issue #22's workload (``--units`` per unit 2 exposures and 20 events, see bench_stream_process.py) is
loaded once by a worker of this repository; then each source tree given with ``--tree NAME=PATH`` runs
``xp stream run --until-idle 5`` as its own process on that same store and group, with nothing left to
read: what it does is start — open the store, rebuild the dedup ids and first exposures, join the group,
and on its first assignment refresh the state and hold again the recent events of its partitions
(decision 0094) — then wait 5 idle seconds and exit. Figures per run: ``startup_seconds`` = wall − the 5
idle seconds, the process's CPU seconds and peak RSS, and what it restored (the worker's report).

The held events restored are those loaded in the last ``XP_STREAM_HOLD_SECONDS``; the restarts run with a
day (86400) so that every run holds all of the workload's events again, however long the bench takes (a
worker restarted at 10 k events/s with the default 300 s holds ~3 M). Every restart reuses the store (a
restart reads it; the view repair it runs finds nothing to add), in an order rotated each round.

    .venv/bin/python bench/bench_stream_restart.py --units 100000 --rounds 2 \\
        --tree before=/tmp/xp-base --tree after=.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._broker import bench_broker, bench_topics
from bench.bench_stream_process import REGISTRY, UNTIL_IDLE, _tree, produce, run_tree

HOLD_SECONDS = 86_400


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--events-per-unit", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH[,XP_SETTING=VALUE...]")
    parser.add_argument("--bootstrap", default=None, help="Use this running broker instead of starting one.")
    args = parser.parse_args()
    this = Path(__file__).resolve().parents[1]
    trees = [_tree(item) for item in args.tree] or [("this", this, {})]
    with (
        tempfile.TemporaryDirectory(prefix="xp-bench-restart-") as tmp,
        bench_broker(Path(tmp), args.bootstrap) as bootstrap,
    ):
        home = Path(tmp)
        kafka = bench_topics(bootstrap)
        prefix = kafka.topic_prefix
        total = produce(kafka, args.units, args.events_per_unit, seed=7)
        registry = home / "registry.json"
        registry.write_text(json.dumps(REGISTRY))
        env = {
            **os.environ,
            "XP_HOME": str(home / "store"),
            "XP_KAFKA_BOOTSTRAP": bootstrap,
            "XP_TOPIC_PREFIX": prefix,
            "XP_STREAM_REGISTRY_FILE": str(registry),
            "XP_STREAM_GROUP_ID": f"xp-bench-restart-{uuid.uuid4().hex[:6]}",
            "XP_LOG_LEVEL": "WARNING",
        }
        began = time.perf_counter()
        loaded = run_tree(this, env)
        print(
            json.dumps(
                {
                    "records": total,
                    "loaded": loaded["consumed"],
                    "attributed": loaded["attributed"],
                    "load_seconds": round(time.perf_counter() - began, 1),
                }
            ),
            flush=True,
        )
        for round_number in range(args.rounds):
            shift = round_number % len(trees)
            row: dict[str, Any] = {"round": round_number + 1, "order": []}
            for name, tree, extra in trees[shift:] + trees[:shift]:
                run = run_tree(tree, {**env, **extra, "XP_STREAM_HOLD_SECONDS": str(HOLD_SECONDS)})
                row["order"].append(name)
                row[name] = {
                    "startup_seconds": round(run["wall_seconds"] - UNTIL_IDLE, 2),
                    "cpu_seconds": run["cpu_seconds"],
                    "peak_rss_mb": run["peak_rss_mb"],
                    "consumed": run["consumed"],
                    "restored": run["restored"],
                }
            row["load_average"] = [round(v, 2) for v in os.getloadavg()]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

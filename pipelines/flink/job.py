"""The Flink runner's job: run by ``.venv-flink/bin/python`` (PyFlink), never imported by the main venv.

``python pipelines/flink/job.py SPEC.json`` reads the statements and the Flink configuration that
:mod:`pipelines.flink.launcher` wrote (the SQL is built by :mod:`pipelines.flink.job_sql`, where it is
tested), runs the DDL, then every INSERT as one statement set (one Flink job), and waits for it. Locally
the job runs on Flink's mini-cluster inside the PyFlink gateway JVM; on a cluster the same statements run
as a SQL job (deploy/flink/). The hot path is SQL on the JVM: no Python function runs per record.

Standard library and PyFlink only: this file is not part of the xpstream packages' import graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _die_with_parent() -> None:
    """SIGKILL this process when its parent (`xp stream run`) dies (Linux ``PR_SET_PDEATHSIG``); the
    gateway JVM ends when its stdin, this process, goes away."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))
    except OSError:  # not Linux: the parent stops the job itself
        pass


def main(spec_path: str) -> int:
    _die_with_parent()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    for key, value in spec["config"].items():
        config.set(key, value)
    for statement in spec["ddl"]:
        env.execute_sql(statement)
    statements = env.create_statement_set()
    for insert in spec["inserts"]:
        statements.add_insert_sql(insert)
    result = statements.execute()
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client is not None else "?"
    print(f"xp-flink job {job_id} running", flush=True)
    result.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""The cron and Kubernetes examples in deploy/ name every scheduled job with a valid schedule."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from xpstream.scheduler.cron import validate_expression
from xpstream.scheduler.settings import SCHEDULE_FIELDS, SchedulerSettings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_every_job_has_a_kubernetes_cronjob_with_its_default_schedule() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "cronjobs.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"CronJob", "PersistentVolumeClaim"}  # the claim: quality reports
    by_job = {}
    for doc in (d for d in docs if d["kind"] == "CronJob"):
        assert doc["spec"]["concurrencyPolicy"] == "Forbid"
        container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:3] == ["xp", "jobs", "run"]
        assert "XP_CLICKHOUSE_URL" in [e["name"] for e in container["env"]]
        by_job[container["args"][3]] = (doc["spec"]["schedule"], container["args"])
    defaults = SchedulerSettings.model_fields
    assert set(by_job) == set(SCHEDULE_FIELDS)
    for job, field in SCHEDULE_FIELDS.items():
        schedule, _ = by_job[job]
        default = str(defaults[field].default)
        # a default with seconds (6 fields) runs every minute in cron and Kubernetes (their finest grain)
        assert schedule == (default if len(default.split()) == 5 else "* * * * *")
        validate_expression(schedule, field)
    assert by_job["quality"][1][-1] == "--strict"


def test_the_crontab_runs_every_job_once_under_flock() -> None:
    lines = [
        line
        for line in (DEPLOY / "cron" / "crontab.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    jobs = [re.search(r"jobs run ([\w-]+)", line).group(1) for line in lines]  # type: ignore[union-attr]
    assert sorted(jobs) == sorted(SCHEDULE_FIELDS)
    for line in lines:
        fields = line.split()
        validate_expression(" ".join(fields[:5]), "crontab")
        assert fields[5:7] == ["flock", "-n"]

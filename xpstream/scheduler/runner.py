"""The scheduler's thread: sleep until the next fire time, run due jobs, record each run.

Each run gets its own thread (a slow ETL does not delay stats); :class:`~.plan.SchedulePlan` keeps one
run per job at a time. A job that is not available yet (:class:`~xpcore.errors.NotYetAvailableError`,
e.g. quality before issue #6) is logged and recorded as skipped; any other error as failed. Nothing a
job raises stops the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from xpcore.errors import NotYetAvailableError, XpError
from xpstream.scheduler.cron import JobSchedule
from xpstream.scheduler.plan import Dispatch, SchedulePlan
from xpstream.scheduler.store import JobRun, Outcome

__all__ = ["JobCallable", "SchedulerRunner", "run_job"]

logger = logging.getLogger(__name__)

JobCallable = Callable[[datetime | None, datetime | None], None]
"""A batch job: ``job(since, until)``; ``None`` means the job's default window."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_job(job: str, call: JobCallable, scheduled_for: datetime, clock: Clock = _utc_now) -> JobRun:
    """Run one job once and say how it went (never raises, except KeyboardInterrupt)."""
    run_id = uuid.uuid4().hex
    started = clock()
    outcome: Outcome = "ok"
    detail = ""
    try:
        call(None, None)
    except NotYetAvailableError as error:
        outcome, detail = "skipped", str(error)
    except XpError as error:
        outcome, detail = "failed", str(error)
    except SystemExit as error:  # typer.Exit / sys.exit inside a job: a non-zero code is a failure
        code = error.code if isinstance(error.code, int) else 1
        if code:
            outcome, detail = "failed", f"exited with code {code}"
    except Exception as error:
        logger.debug("job %s failed", job, exc_info=True)
        exit_code = getattr(error, "exit_code", None)  # click.exceptions.Exit
        if exit_code == 0:
            pass
        else:
            outcome, detail = "failed", f"unexpected {type(error).__name__}: {error}"
    return JobRun(
        run_id, job, scheduled_for, started, clock(), outcome, detail.splitlines()[0] if detail else ""
    )


class SchedulerRunner:
    """Runs ``jobs`` on ``schedules`` in a background thread until :meth:`stop`."""

    def __init__(
        self,
        schedules: Iterable[JobSchedule],
        jobs: Mapping[str, JobCallable],
        *,
        record: Callable[[JobRun], None] | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self.schedules = list(schedules)
        missing = [s.job for s in self.schedules if s.job not in jobs]
        if missing:
            raise XpError(f"no job callable for scheduled job(s): {', '.join(missing)}")
        self.jobs = dict(jobs)
        self.record = record
        self.clock = clock
        self.plan = SchedulePlan(self.schedules, clock())
        self.last_runs: dict[str, JobRun] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for schedule in self.schedules:
            logger.info(
                "scheduler: %s at %r (%s), next at %s",
                schedule.job,
                schedule.expression,
                schedule.setting,
                self.plan.next_at[schedule.job].isoformat(timespec="seconds"),
            )
        self._thread = threading.Thread(target=self._loop, name="xp-scheduler", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float) -> list[str]:
        """Stop planning runs; wait up to ``timeout`` s for running jobs. Returns the jobs left running."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads.items())
        for job, thread in threads:
            logger.info("scheduler: waiting for the running %s job to finish", job)
            thread.join(max(0.0, deadline - time.monotonic()))
        left = [job for job, thread in threads if thread.is_alive()]
        for job in left:
            logger.warning("scheduler: %s still running after %.0fs: left behind", job, timeout)
        return left

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self.plan.running)

    # ------------------------------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    dispatches = self.plan.due(self.clock())
                for dispatch in dispatches:
                    self._dispatch(dispatch)
                with self._lock:
                    wait = self.plan.seconds_until_next(self.clock())
                # Wake at least once a second: a wall-clock jump never delays a run for long.
                self._stop.wait(1.0 if wait is None else min(max(wait, 0.01), 1.0))
        except Exception as error:  # pragma: no cover - a bug in the loop itself
            self.error = f"{type(error).__name__}: {error}"
            logger.exception("scheduler loop failed")

    def _dispatch(self, dispatch: Dispatch) -> None:
        if dispatch.action == "skip":
            logger.warning(
                "scheduler: %s due at %s skipped: its previous run is still going",
                dispatch.job,
                dispatch.scheduled_for.isoformat(timespec="seconds"),
            )
            return
        thread = threading.Thread(
            target=self._run, args=(dispatch,), name=f"xp-job-{dispatch.job}", daemon=True
        )
        with self._lock:
            self._threads[dispatch.job] = thread
        thread.start()

    def _run(self, dispatch: Dispatch) -> None:
        logger.info("scheduler: %s started (due %s)", dispatch.job, dispatch.scheduled_for.isoformat())
        run = run_job(dispatch.job, self.jobs[dispatch.job], dispatch.scheduled_for, self.clock)
        log: Any = logger.info if run.outcome != "failed" else logger.warning
        log(
            "scheduler: %s %s in %.2fs%s",
            run.job,
            run.outcome,
            run.seconds,
            f": {run.detail}" if run.detail else "",
        )
        with self._lock:
            self.last_runs[run.job] = run
            self.plan.finished(run.job)
        if self.record is not None:
            try:
                self.record(run)
            except Exception as error:
                logger.warning("scheduler: run of %s not recorded in xp.job_runs: %s", run.job, error)
        with self._lock:
            if self._threads.get(run.job) is threading.current_thread():
                self._threads.pop(run.job, None)

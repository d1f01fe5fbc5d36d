"""`xp up`: check, own the store, start every component, wait for a signal, stop them in order.

Start: settings (every component's and every scheduled job's, one object built by the entry point and
handed to each) and schedules are validated and every port is checked before anything starts (a bad
setting is one line and exit 2). The embedded store is opened and migrated, the up API starts and is
advertised in the store's lock file, then the stream worker, the scheduler, the assignment service and
the dashboard.

Stop (SIGINT/SIGTERM; a second signal exits at once): the API is withdrawn from the lock file (new
commands wait for the store instead), the servers stop accepting, the stream worker finishes its batch
and commits, the scheduler lets a running job finish (up to ``XP_SCHEDULER_STOP_SECONDS``), then the up
API stops and the store is closed, which releases the lock. Exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dashboards.app import create_app
from xpcore.errors import ConfigError, StoreBusyError, XpError
from xpcore.http_server import HttpLimits
from xpstream.batch.registry import JOBS, JobName, run_job
from xpstream.scheduler.cron import JobSchedule, parse_schedules
from xpstream.scheduler.runner import JobCallable, SchedulerRunner
from xpstream.scheduler.store import store_job_run
from xpstream.up.admin import allowed_hosts, build_admin_app, check_admin_bind
from xpstream.up.component_health import Health
from xpstream.up.components import StreamSupervisor, check_port, serve_app, url_of
from xpstream.up.pidfile import UpRecord, remove_record, write_record

if TYPE_CHECKING:
    from xpcore.usage import UsageCounts
    from xpcore.warehouse.base import Warehouse
    from xpstream.up.settings import UpSettings

__all__ = ["run_up", "scheduled_jobs", "schedules_from"]

logger = logging.getLogger(__name__)

STREAM_STOP_SECONDS = 20.0
"""How long the stream worker gets to finish its batch, commit and leave the group."""


def schedules_from(settings: UpSettings) -> list[JobSchedule]:
    """The enabled job schedules (ConfigError naming the setting of an invalid expression)."""
    return parse_schedules(settings.schedule_expressions())


def scheduled_jobs(settings: UpSettings) -> dict[str, JobCallable]:
    """Every batch job of the registry as the scheduler calls it: run with ``settings`` (the object
    `xp up` holds, never rebuilt from the environment), its report's summary logged."""

    def scheduled(name: JobName) -> JobCallable:
        def call(since: datetime | None, until: datetime | None) -> None:
            report = run_job(name, settings, since=since, until=until)
            for line in report.summary().splitlines():
                logger.info("%s", line)

        return call

    return {name.value: scheduled(name) for name in JOBS}


def _own_store(settings: UpSettings) -> Warehouse:
    """Open (and migrate) the warehouse as its owner: embedded mode fails if another process has it."""
    from xpcore.warehouse import apply_migrations, open_warehouse

    if settings.clickhouse_url:
        return open_warehouse(settings)
    from xpcore.warehouse.chdb import ChdbWarehouse, StoreOwnedError

    try:
        warehouse = ChdbWarehouse(
            settings.warehouse_path,
            wait_seconds=settings.store_wait_seconds,
            allow_external=settings.sql_allow_external,
        )
    except StoreOwnedError as error:
        raise StoreBusyError(f"`xp up` must own the embedded store: {error}") from None
    try:
        apply_migrations(warehouse)
    except BaseException:
        warehouse.close()
        raise
    return warehouse


def run_up(settings: UpSettings, *, with_stack: bool = False) -> None:
    """Run until SIGINT/SIGTERM; returns after a clean shutdown (raises XpError if it cannot start)."""
    components = settings.components()
    schedules = schedules_from(settings) if "scheduler" in components else []
    tokens = settings.tokens()
    check_admin_bind(settings.up_host, tokens)
    check_port(settings.up_host, settings.up_port, "XP_UP_PORT")
    if "service" in components:
        check_port(settings.service_host, settings.service_port, "XP_SERVICE_PORT")
    if "dashboard" in components:
        check_port(settings.dashboard_host, settings.dashboard_port, "XP_DASHBOARD_PORT")
    if with_stack:
        from xpstream.stack.launcher import start_kafka

        started = start_kafka(settings)
        state = "already running" if started.already_running else "started"
        logger.info("stack: Kafka %s at %s (pid %d)", state, started.bootstrap, started.pid)
    settings = settings.model_copy(update={"api_url": None})  # this process owns the store
    warehouse = _own_store(settings)
    logger.info("warehouse: %s %s", warehouse.kind, warehouse.location)
    try:
        asyncio.run(_serve_all(settings, components, schedules, tokens, warehouse))
    finally:
        warehouse.close()
        logger.info("up: stopped; warehouse closed")


async def _serve_all(
    settings: UpSettings,
    components: list[str],
    schedules: list[JobSchedule],
    tokens: list[str],
    warehouse: Warehouse,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    first_signal: list[float] = []

    def on_signal(sig: signal.Signals) -> None:
        if first_signal:
            if time.monotonic() - first_signal[0] < 1.0:
                return  # the same Ctrl-C delivered twice (e.g. to a wrapper and to us)
            logger.warning("up: second %s: exiting now", sig.name)
            os._exit(1)
        first_signal.append(time.monotonic())
        logger.info("up: %s: shutting down (again to exit at once)", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    health = Health()
    embedded = warehouse.kind == "chdb"
    health.set("warehouse", "ok", f"{warehouse.kind} {warehouse.location}")
    for name in ("stream", "scheduler", "dashboard", "service"):
        if name in components:
            health.set(name, "starting")  # /healthz says 503 until every enabled component is up
        else:
            health.set(name, "disabled", "not in XP_UP_COMPONENTS")

    owner_token = secrets.token_urlsafe(32)  # local commands read it from the 0600 lock file (0031)
    api_stop = asyncio.Event()
    api_task = asyncio.create_task(
        serve_app(
            "api",
            build_admin_app(
                health,
                warehouse if embedded else None,
                [owner_token, *tokens],
                port=settings.up_port,
                hosts=allowed_hosts(settings.up_host, settings.allowed_hosts()),
                allow_external=settings.sql_allow_external,
            ),
            settings.up_host,
            settings.up_port,
            health,
            api_stop,
            limits=HttpLimits.from_settings(settings),
        )
    )
    while health.status("api") in (None, "starting"):
        await asyncio.sleep(0.05)
    if health.status("api") != "ok":
        await api_task
        raise XpError(f"the up API could not start on {settings.up_host}:{settings.up_port}")
    api_url = url_of(settings.up_host, settings.up_port)
    if embedded:
        warehouse.advertise_api_url(api_url, owner_token)  # type: ignore[attr-defined]
        logger.info("warehouse: serving the store to other xp commands at %s/v1/warehouse", api_url)
    logger.info("up: health at %s/healthz", api_url)
    record = write_record(settings.home, UpRecord(health.pid, health.started_at, f"{api_url}/healthz"))
    logger.info("up: pid %d recorded in %s (`xp up status`, `xp up stop`)", health.pid, record)
    try:
        await _run_components(settings, components, schedules, health, stop, warehouse, embedded)
    finally:
        remove_record(settings.home, health.pid)
        api_stop.set()
        await api_task


async def _run_components(
    settings: UpSettings,
    components: list[str],
    schedules: list[JobSchedule],
    health: Health,
    stop: asyncio.Event,
    warehouse: Warehouse,
    embedded: bool,
) -> None:
    """Start the enabled components, wait for ``stop``, stop them in order (the API stays up meanwhile)."""
    loop = asyncio.get_running_loop()

    stream: StreamSupervisor | None = None
    if "stream" in components:
        stream = StreamSupervisor(settings, health, restart_max_seconds=settings.up_restart_max_seconds)
        stream.start()

    scheduler: SchedulerRunner | None = None
    tasks: list[asyncio.Task[None]] = []
    if "scheduler" in components:
        scheduler = SchedulerRunner(
            schedules, scheduled_jobs(settings), record=lambda run: store_job_run(warehouse, run)
        )
        scheduler.start()
        tasks.append(asyncio.create_task(_watch_scheduler(scheduler, health, stop)))
        logger.info("scheduler: started with %d job(s)", len(schedules))
    if "service" in components:
        tasks.append(asyncio.create_task(_run_service(settings, health, stop)))
    if "dashboard" in components:
        tasks.append(asyncio.create_task(_run_dashboard(settings, health, stop)))

    logger.info("up: running %s (Ctrl-C to stop)", ", ".join(components) or "nothing")
    await stop.wait()

    if embedded:
        warehouse.advertise_api_url(None)  # type: ignore[attr-defined]
    stoppers: list[asyncio.Future[Any]] = []
    if scheduler is not None:
        stoppers.append(loop.run_in_executor(None, scheduler.stop, settings.scheduler_stop_seconds))
    if stream is not None:
        stoppers.append(loop.run_in_executor(None, stream.stop, STREAM_STOP_SECONDS))
    await asyncio.gather(*stoppers, *tasks, return_exceptions=True)
    if scheduler is not None:
        logger.info("scheduler: stopped")


async def _watch_scheduler(scheduler: SchedulerRunner, health: Health, stop: asyncio.Event) -> None:
    """Mirror the scheduler's state into the health report once a second."""
    while True:
        next_runs = {job: at.isoformat(timespec="seconds") for job, at in scheduler.plan.next_at.items()}
        last = {
            job: {"outcome": run.outcome, "finished_at": run.finished_at.isoformat(timespec="seconds")}
            for job, run in scheduler.last_runs.items()
        }
        extra: dict[str, Any] = {"next_runs": next_runs, "last_runs": last, "running": scheduler.running()}
        if scheduler.alive:
            health.set("scheduler", "ok", **extra)
        elif not stop.is_set():
            health.set("scheduler", "failing", scheduler.error or "the scheduler thread stopped", **extra)
        if stop.is_set():
            health.set("scheduler", "stopping", **extra)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _run_service(settings: UpSettings, health: Health, stop: asyncio.Event) -> None:
    """The assignment service: start its payload source and exposure sink (retrying), then serve."""
    from assignment.service.app import build_app
    from assignment.service.server import build_service

    loop = asyncio.get_running_loop()
    url = url_of(settings.service_host, settings.service_port)
    delay = 1.0
    while not stop.is_set():
        service = None
        try:
            service = build_service(settings)
            service.sink.start()
            await loop.run_in_executor(None, service.source.start)
            break
        except ConfigError as error:
            health.set("service", "failing", str(error), url=url)
            logger.error("service: %s", error)
            return
        except Exception as error:  # XpError, or a Kafka client error: retry
            health.set("service", "failing", str(error), url=url)
            logger.warning("service: cannot start: %s; retrying in %.0fs", error, delay)
            if service is not None:
                await loop.run_in_executor(None, service.sink.stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, settings.up_restart_max_seconds)
    if service is None or stop.is_set():
        return
    stop_flushing, flusher = _flush_service_usage(settings, service.usage)
    try:
        await serve_app(
            "service",
            build_app(service, manage_lifecycle=False),
            settings.service_host,
            settings.service_port,
            health,
            stop,
            limits=HttpLimits.from_settings(settings),
        )
    finally:
        await loop.run_in_executor(None, service.sink.stop)
        await loop.run_in_executor(None, service.source.stop)
        stop_flushing.set()
        if flusher is not None:
            await loop.run_in_executor(None, flusher.join, 10)


def _flush_service_usage(
    settings: UpSettings, usage: UsageCounts
) -> tuple[threading.Event, threading.Thread | None]:
    """The service's usage counts (requests and exposures per client key id) flushed to xp.usage_daily
    every minute on a store handle of this process (decision 0092); none when the store cannot open."""
    from xpcore.usage import flush_periodically
    from xpcore.warehouse import open_warehouse

    stop = threading.Event()
    try:
        store = open_warehouse(settings, migrate=False)
    except XpError as error:
        logger.warning("service: usage counts are not stored: %s", error)
        return stop, None

    def run() -> None:
        try:
            flush_periodically(store, usage, stop)
        finally:
            store.close()

    thread = threading.Thread(target=run, name="service-usage", daemon=True)
    thread.start()
    return stop, thread


async def _run_dashboard(settings: UpSettings, health: Health, stop: asyncio.Event) -> None:
    """The dashboard app (built by dashboards.app) on its own warehouse handle."""
    from xpcore.warehouse import open_warehouse

    url = url_of(settings.dashboard_host, settings.dashboard_port)
    try:
        store = open_warehouse(settings, migrate=False)
    except XpError as error:
        health.set("dashboard", "failing", str(error), url=url)
        return
    try:
        try:
            app = create_app(settings, store)
        except Exception as error:
            health.set("dashboard", "failing", f"cannot build the app: {error}", url=url)
            logger.error("dashboard: cannot build the app: %s", error)
            return
        await serve_app(
            "dashboard",
            app,
            settings.dashboard_host,
            settings.dashboard_port,
            health,
            stop,
            limits=HttpLimits.from_settings(settings),
        )
    finally:
        store.close()

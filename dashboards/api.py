"""The JSON API behind every page, and the exports (Starlette endpoints; the data lives in the views)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dashboards import exports
from dashboards.catalog import compare_experiments, list_experiments
from dashboards.context import DashboardContext
from dashboards.funnel_view import funnel_page, parse_ordered, realtime_funnel_page
from dashboards.health_page import health
from dashboards.quality_view import audit, quality
from dashboards.results_view import computation_failure, results_page
from dashboards.window_computations import TooManyComputations
from xpcore.errors import TransientError, ValidationError, XpError
from xpcore.timeparse import parse_time

__all__ = ["api_routes", "error_response"]

EMPTY_COLUMNS = {
    "snapshots": [c for c, _ in exports.RESULT_COLUMNS if c != "experiment"],
    "daily": ["experiment_key", "metric", "variation_id", "day", "units", "sum", "sum_squares", "mean"],
}


def context_of(request: Request) -> DashboardContext:
    """The app's state (built on first use when the app runs mounted inside another one)."""
    context: DashboardContext | None = request.app.state.dashboard
    if context is None:
        context = request.app.state.build_dashboard()
    assert context is not None
    return context


def error_response(error: Exception) -> JSONResponse:
    """An XpError as JSON: 404 unknown experiment, 400 bad input, 503 warehouse unreachable, else 500."""
    if isinstance(error, ValidationError):
        status = 404 if str(error).startswith("unknown experiment") else 400
    elif isinstance(error, TransientError):
        status = 503
    else:
        status = 500
    return JSONResponse({"error": str(error)}, status_code=status)


def _time(request: Request, name: str) -> datetime | None:
    return parse_time(request.query_params.get(name), name)


def _json(document: Any) -> JSONResponse:
    return JSONResponse(document, headers={"Cache-Control": "no-store"})


def guarded(handler: Any) -> Any:
    def endpoint(request: Request) -> Response:
        try:
            return handler(request)
        except XpError as error:
            return error_response(error)

    endpoint.__name__ = handler.__name__
    return endpoint


@guarded
def experiments_endpoint(request: Request) -> Response:
    params = request.query_params
    return _json(
        list_experiments(context_of(request), query=params.get("q", ""), status=params.get("status", ""))
    )


@guarded
def results_endpoint(request: Request) -> Response:
    key = request.path_params["key"]
    try:
        answer = results_page(context_of(request), key, **_view(request))
    except TooManyComputations as error:
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse(answer.document, status_code=answer.status, headers=answer.headers)


def _view(request: Request) -> dict[str, Any]:
    """The custom view of a results request: method, window, segment (as `xp results` takes them)."""
    params = request.query_params
    try:
        top = int(params.get("top", "10"))
    except ValueError:
        raise ValidationError("top must be an integer") from None
    return {
        "top": max(top, 1),
        "method": params.get("method") or None,
        "since": _time(request, "since"),
        "until": _time(request, "until"),
        "segment": params.get("segment") or None,
    }


@guarded
def activity_endpoint(request: Request) -> Response:
    from datetime import timedelta

    from jobs.activity import compute_activity

    now = datetime.now(UTC)
    until = _time(request, "until")
    since = _time(request, "since") or (until or now) - timedelta(days=ACTIVITY_DAYS)
    if until is not None and until <= since:
        raise ValidationError("until must be after since")
    return _json(compute_activity(context_of(request).warehouse, since=since, until=until, now=now))


ACTIVITY_DAYS = 28
"""The Activity page's roll-ups without ``?since=``: the last four weeks (as ``xp activity``)."""


@guarded
def program_endpoint(request: Request) -> Response:
    """The program view (``xp program --format json``): ``?team=``, ``?metric=``, ``?experiments=a,b``."""
    from jobs.program import compute_program, parse_experiment_list

    params = request.query_params
    return _json(
        compute_program(
            context_of(request).warehouse,
            team=params.get("team") or None,
            metric=params.get("metric") or None,
            experiments=parse_experiment_list(params.get("experiments") or None),
        )
    )


@guarded
def funnel_endpoint(request: Request) -> Response:
    params = request.query_params
    steps = params.get("steps")
    try:
        document = funnel_page(
            context_of(request),
            request.path_params["key"],
            steps=[s.strip() for s in steps.split(",")] if steps is not None else None,
            window=params.get("window") or None,
            ordered=parse_ordered(params.get("ordered")),
            since=_time(request, "since"),
            until=_time(request, "until"),
        )
    except TooManyComputations as error:
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})
    return _json(document)


@guarded
def health_endpoint(request: Request) -> Response:
    key = request.path_params.get("key") or request.query_params.get("experiment") or None
    return _json(health(context_of(request), key))


@guarded
def compare_endpoint(request: Request) -> Response:
    keys = [k for k in request.query_params.get("keys", "").split(",") if k.strip()]
    if len(keys) < 2:
        raise ValidationError("compare needs at least two experiments: ?keys=a,b")
    method = request.query_params.get("method") or None
    return _json(compare_experiments(context_of(request), [k.strip() for k in keys], method=method))


@guarded
def quality_endpoint(request: Request) -> Response:
    return _json(quality(context_of(request)))


@guarded
def audit_endpoint(request: Request) -> Response:
    try:
        limit = min(max(int(request.query_params.get("limit", "500")), 1), 10_000)
    except ValueError:
        raise ValidationError("limit must be an integer") from None
    return _json(audit(context_of(request), key=request.query_params.get("key", ""), limit=limit))


def _pages(
    context: DashboardContext, dataset: str, key: str, method: str | None, result: dict[str, Any] | None
) -> Iterator[pa.Table]:
    if dataset == "results":
        yield exports.result_rows_table(result or context.current_result(key, method=method)[0])
        return
    query = "export_results_snapshots" if dataset == "snapshots" else "export_daily_metrics"
    batch = context.settings.dashboard_export_batch_rows

    def fetch(limit: int, offset: int) -> pa.Table:
        table = context.runner.arrow(query, {"experiment": key, "limit": limit, "offset": offset})
        if table.num_columns == 0:  # no rows: the engine sends no columns either
            table = pa.table({name: pa.array([], pa.string()) for name in EMPTY_COLUMNS[dataset]})
        return table

    yield from exports.paged_tables(fetch, batch)


@guarded
def export_endpoint(request: Request) -> Response:
    context = context_of(request)
    key, dataset, fmt = (request.path_params[n] for n in ("key", "dataset", "fmt"))
    if dataset not in exports.DATASETS:
        raise ValidationError(f"dataset must be one of {', '.join(exports.DATASETS)}, got {dataset!r}")
    media = exports.media_type(fmt)
    context.experiment(key)  # 404 before the stream starts
    view = _view(request)
    method = view["method"]
    result = None
    if dataset == "results" and (view["since"] or view["until"] or view["segment"]):
        # a custom view: join (or reuse) the page's background computation and wait for it, so that a
        # download never answers 202 and never computes the same view twice (decision 0027)
        try:
            computation = context.view_result(key, **view, wait=True)
        except TooManyComputations as error:
            return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})
        if computation.result is None:
            failure = computation_failure(computation)
            return JSONResponse(failure.document, status_code=failure.status, headers=failure.headers)
        result = computation.result.to_json()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"{key}-{dataset}-{stamp}.{fmt}"
    body = exports.encode(_pages(context, dataset, key, method, result), fmt, sheet=dataset)
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@guarded
def realtime_funnel_endpoint(request: Request) -> Response:
    """The health page's funnel of the last hour or day (``?window=hour|day``); 202 until the first
    computation of that experiment and window has finished."""
    try:
        document, ready = realtime_funnel_page(
            context_of(request), request.path_params["key"], request.query_params.get("window") or "hour"
        )
    except TooManyComputations as error:
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})
    if not ready:
        return JSONResponse(document, status_code=202, headers={"Retry-After": "1"})
    return _json(document)


@guarded
def clear_cache_endpoint(request: Request) -> Response:
    """Admin: forget cached results and the cached registry (the next request recomputes)."""
    context = context_of(request)
    context.views.clear()
    context.funnels.clear()
    context.realtime_funnels.clear()
    context.latest_realtime_funnels.clear()
    context.background.clear()
    context.registry.invalidate()
    return _json({"cleared": True})


def api_routes() -> list[Route]:
    return [
        Route("/api/experiments", experiments_endpoint),
        Route("/api/experiments/{key}/results", results_endpoint),
        Route("/api/experiments/{key}/health", health_endpoint),
        Route("/api/experiments/{key}/funnel", funnel_endpoint),
        Route("/api/experiments/{key}/funnel/realtime", realtime_funnel_endpoint),
        Route("/api/experiments/{key}/export/{dataset}.{fmt}", export_endpoint),
        Route("/api/health", health_endpoint),
        Route("/api/compare", compare_endpoint),
        Route("/api/quality", quality_endpoint),
        Route("/api/audit", audit_endpoint),
        Route("/api/activity", activity_endpoint),
        Route("/api/program", program_endpoint),
        Route("/api/admin/cache/clear", clear_cache_endpoint, methods=["POST"]),
    ]

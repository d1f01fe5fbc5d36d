"""The read API for programmatic export: ``GET /api/v1/export/{dataset}``, keyset-paginated JSON.

Same auth as every dashboard route (:mod:`dashboards.auth`: a read token; GET and HEAD only). A page is
``limit`` rows (at most ``XP_DASHBOARD_EXPORT_API_MAX_ROWS``) in the dataset's key order after the cursor,
cut short at ``XP_DASHBOARD_EXPORT_API_MAX_BYTES`` of rows; ``next_cursor`` resumes after the last row
given (``null``: done). Keyset pages: a walk returns every row present when it started exactly once,
whatever is inserted meanwhile (docs/decisions/0088). Requests are limited per token (per
address without tokens) to ``XP_DASHBOARD_EXPORT_API_PER_MINUTE``; then 429 with ``Retry-After``.

The document (``schema_version`` 1) is described in docs/exports.md and by ``GET /api/v1/export``
(:func:`page_json_schema`); unknown query parameters, a malformed cursor or one from another query are a
400, never a guess.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dashboards.api import context_of, guarded
from dashboards.auth import request_token
from jobs.exports.datasets import PAGED_DATASETS, KeyColumn, PagedDataset, PageQuery, page_sql
from xpcore.errors import ValidationError
from xpcore.timeparse import parse_time

__all__ = [
    "SCHEMA_VERSION",
    "RateLimiter",
    "decode_cursor",
    "encode_cursor",
    "export_page",
    "export_routes",
    "page_json_schema",
]

SCHEMA_VERSION = 1
DEFAULT_LIMIT = 1000
MAX_CURSOR_CHARS = 4096
COMMON_PARAMETERS = frozenset({"limit", "cursor", "since", "until"})
_MS = 1000


# ------------------------------------------------------------------------------------------------ cursors
def _fingerprint(
    dataset: str, since: datetime | None, until: datetime | None, filters: dict[str, str]
) -> str:
    """What a cursor is bound to: the dataset, the window and the filters (a short hash)."""
    text = json.dumps([dataset, _iso(since), _iso(until), sorted(filters.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _key_value(column: KeyColumn, value: Any) -> Any:
    if column.is_time:
        return int(value.timestamp() * _MS) if isinstance(value, datetime) else value
    return value


def encode_cursor(dataset: PagedDataset, last_row: dict[str, Any], fingerprint: str) -> str:
    """An opaque cursor: resume ``dataset`` after ``last_row``'s key, in the same query."""
    document = {
        "v": SCHEMA_VERSION,
        "d": dataset.name,
        "k": [_key_value(k, last_row[k.name]) for k in dataset.key],
        "q": fingerprint,
    }
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(why: str) -> ValidationError:
    return ValidationError(f"cursor is not valid ({why}): start again without one")


_MS_MIN, _MS_MAX = 0, 10_413_792_000_000  # 1970 … 2300: DateTime64(3)'s range


def _decoded_value(column: KeyColumn, value: Any) -> Any:
    if column.is_time:
        if not isinstance(value, int) or isinstance(value, bool) or not _MS_MIN <= value < _MS_MAX:
            raise _bad_cursor(f"{column.name} must be a time")
        return datetime.fromtimestamp(value / _MS, UTC)
    if column.type == "UInt16":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise _bad_cursor(f"{column.name} must be an integer")
        return value
    if not isinstance(value, str) or len(value) > 1024:
        raise _bad_cursor(f"{column.name} must be text")
    return value


def decode_cursor(text: str, dataset: PagedDataset, fingerprint: str) -> list[Any]:
    """The last key of a cursor made by :func:`encode_cursor` for this very query, or a 400."""
    if len(text) > MAX_CURSOR_CHARS:
        raise _bad_cursor("too long")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor("not one this API made") from None
    if not isinstance(document, dict) or document.get("v") != SCHEMA_VERSION:
        raise _bad_cursor("unknown version")
    if document.get("d") != dataset.name or document.get("q") != fingerprint:
        raise _bad_cursor("it belongs to another dataset, window or filter")
    keys = document.get("k")
    if not isinstance(keys, list) or len(keys) != len(dataset.key):
        raise _bad_cursor("key")
    return [_decoded_value(c, v) for c, v in zip(dataset.key, keys, strict=True)]


# ------------------------------------------------------------------------------------------------ limits
class RateLimiter:
    """At most ``per_minute`` requests per caller in any sliding minute (a token bucket; clock injected)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, caller: str) -> float:
        """0 when ``caller`` may go ahead (one request taken), else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            if len(self._buckets) > 10_000:  # forget callers whose buckets are full again
                full = [
                    k for k, (t, a) in self._buckets.items() if t + (now - a) * self.rate >= self.capacity
                ]
                for key in full:
                    del self._buckets[key]
            return (1.0 - tokens) / self.rate


def _caller(request: Request) -> str:
    token = request_token(request)
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return "address:" + (request.client.host if request.client else "unknown")


# ------------------------------------------------------------------------------------------------ pages
def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column_types(dataset: PagedDataset, sample: Any) -> list[dict[str, str]]:
    import pyarrow as pa

    def kind(arrow_type: Any) -> str:
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        if pa.types.is_timestamp(arrow_type):
            return "timestamp"
        if pa.types.is_boolean(arrow_type):
            return "boolean"
        if pa.types.is_integer(arrow_type):
            return "integer"
        if pa.types.is_floating(arrow_type):
            return "number"
        return "string"

    types = {f.name: kind(f.type) for f in sample.schema} if sample.num_columns else {}
    return [{"name": name, "type": types.get(name, "string")} for name in dataset.column_names]


def _limit(request: Request, maximum: int) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return min(DEFAULT_LIMIT, maximum)
    if not text.isdigit() or len(text) > 9:
        raise ValidationError(f"limit must be a whole number from 1 to {maximum}")
    limit = int(text)
    if not 1 <= limit <= maximum:
        raise ValidationError(
            f"limit must be from 1 to {maximum} (XP_DASHBOARD_EXPORT_API_MAX_ROWS), got {limit}"
        )
    return limit


def _filters(request: Request, dataset: PagedDataset) -> dict[str, str]:
    allowed = COMMON_PARAMETERS | set(dataset.filters)
    names = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValidationError(
            f"unknown parameter(s) {', '.join(unknown)[:200]}: "
            f"{dataset.name} takes {', '.join(sorted(allowed))}"
        )
    if len(names) != len(set(names)):
        raise ValidationError("each parameter may be given once")
    filters = {name: request.query_params[name] for name in dataset.filters if name in request.query_params}
    for name, value in filters.items():
        if len(value) > 1024:
            raise ValidationError(f"{name} is too long")
    return filters


def export_page(request: Request, dataset: PagedDataset) -> dict[str, Any]:
    """One page of ``dataset`` for this request (ValidationError: 400)."""
    context = context_of(request)
    settings = context.settings
    filters = _filters(request, dataset)
    limit = _limit(request, settings.dashboard_export_api_max_rows)
    since = parse_time(request.query_params.get("since"), "since")
    until = parse_time(request.query_params.get("until"), "until")
    if since is not None and until is not None and until <= since:
        raise ValidationError("until must be after since")
    fingerprint = _fingerprint(dataset.name, since, until, filters)
    cursor = request.query_params.get("cursor")
    after = decode_cursor(cursor, dataset, fingerprint) if cursor else None
    sql, params = page_sql(PageQuery(dataset, limit + 1, since, until, filters, after))
    table = context.warehouse.query_arrow(sql, params)
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    size, budget = 0, settings.dashboard_export_api_max_bytes
    for row in table.slice(0, limit).to_pylist():
        plain = {name: _json_value(row.get(name)) for name in dataset.column_names}
        size += len(json.dumps(plain, default=str))
        if rows and size > budget:
            break
        rows.append((row, plain))
    more = len(rows) < table.num_rows
    next_cursor = encode_cursor(dataset, rows[-1][0], fingerprint) if more and rows else None
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset.name,
        "since": _iso(since),
        "until": _iso(until),
        "filters": filters,
        "order": [k.name for k in dataset.key],
        "columns": _column_types(dataset, table),
        "row_count": len(rows),
        "rows": [plain for _, plain in rows],
        "next_cursor": next_cursor,
    }


def page_json_schema() -> dict[str, Any]:
    """The JSON Schema of a page (from the same constants the pages are built from)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "xpstream/export-page/v1",
        "type": "object",
        "required": [
            "schema_version",
            "dataset",
            "since",
            "until",
            "filters",
            "order",
            "columns",
            "row_count",
            "rows",
            "next_cursor",
        ],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "dataset": {"enum": sorted(PAGED_DATASETS)},
            "since": {"type": ["string", "null"], "format": "date-time"},
            "until": {"type": ["string", "null"], "format": "date-time"},
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
            "order": {"type": "array", "items": {"type": "string"}},
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"enum": ["string", "integer", "number", "boolean", "timestamp"]},
                    },
                },
            },
            "row_count": {"type": "integer", "minimum": 0},
            "rows": {"type": "array", "items": {"type": "object"}},
            "next_cursor": {"type": ["string", "null"]},
        },
        "additionalProperties": False,
    }


def _index() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "datasets": {
            name: {
                "columns": dataset.column_names,
                "order": [k.name for k in dataset.key],
                "time_column": dataset.time_column,
                "filters": sorted(dataset.filters),
            }
            for name, dataset in PAGED_DATASETS.items()
        },
        "page_schema": page_json_schema(),
    }


def export_routes() -> list[Route]:
    """``GET /api/v1/export`` (the datasets and the page schema) and ``GET /api/v1/export/{dataset}``."""
    limiter: list[RateLimiter] = []
    lock = threading.Lock()

    def limited(request: Request) -> Response | None:
        with lock:
            if not limiter:
                limiter.append(RateLimiter(context_of(request).settings.dashboard_export_api_per_minute))
        wait = limiter[0].allow(_caller(request))
        if wait <= 0:
            return None
        return JSONResponse(
            {"error": "too many export requests: slow down"},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    @guarded
    def index_endpoint(request: Request) -> Response:
        return limited(request) or JSONResponse(_index(), headers={"Cache-Control": "no-store"})

    @guarded
    def page_endpoint(request: Request) -> Response:
        refused = limited(request)
        if refused is not None:
            return refused
        dataset = PAGED_DATASETS.get(request.path_params["dataset"])
        if dataset is None:
            return JSONResponse(
                {"error": f"unknown dataset; one of {', '.join(sorted(PAGED_DATASETS))}"}, status_code=404
            )
        return JSONResponse(export_page(request, dataset), headers={"Cache-Control": "no-store"})

    return [
        Route("/api/v1/export", index_endpoint, methods=["GET"]),
        Route("/api/v1/export/{dataset}", page_endpoint, methods=["GET"]),
    ]

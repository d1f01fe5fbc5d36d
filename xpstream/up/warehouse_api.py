"""The warehouse API: the embedded store served to other processes by its owner (`xp up`).

Decision 0003 step 3 and docs/decisions/0011-store-routing.md. The client is
:class:`xpcore.warehouse.remote.RemoteWarehouse`; the wire format is described there. Every call runs
in a worker thread (the event loop stays free for /healthz) on the owner's own
:class:`~xpcore.warehouse.base.Warehouse`, so read-only queries run on its read-only connection
exactly as they would in the calling process.

What the API runs is limited to what the routed commands need (:mod:`xpcore.warehouse.sqlguard`,
docs/decisions/0032-sql-guard.md): ``/query`` only reading statements, ``/command`` only INSERT, ALTER
TABLE … DELETE|UPDATE and OPTIMIZE TABLE on ``xp`` tables (no DDL: migrations run in the owner itself),
``/insert`` only into ``xp`` tables, and nothing that reaches outside the database unless the owner runs
with ``XP_SQL_ALLOW_EXTERNAL``. JSON endpoints take ``application/json`` bodies only, ``/insert`` exactly
the Arrow stream type (415 otherwise), so a web page's "simple" request cannot reach them.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xpcore.errors import ReadOnlyError, TerminalError, TransientError, XpError
from xpcore.warehouse.remote import (
    ARROW_STREAM,
    arrow_from_ipc,
    arrow_to_ipc,
    decode_parameters,
    error_body,
)
from xpcore.warehouse.sqlguard import read_only_refusal, routed_insert_refusal, routed_write_refusal

if TYPE_CHECKING:
    from xpcore.warehouse.base import Warehouse

__all__ = ["error_status", "warehouse_routes"]

logger = logging.getLogger(__name__)


def error_status(error: XpError) -> int:
    """HTTP status for an error: 503 worth retrying, 409 store busy, 403 refused by the SQL guard,
    400 anything else the caller sent."""
    if isinstance(error, TransientError):
        return 503
    if isinstance(error, ReadOnlyError):
        return 403
    if type(error).__name__ == "StoreBusyError":
        return 409
    return 400


def _error(error: XpError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error_status(error))


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _unsupported(expected: str) -> JSONResponse:
    message = f"the request body must be sent as Content-Type: {expected}"
    return JSONResponse({"error": {"type": "TerminalError", "message": message}}, status_code=415)


def _refuse(refusal: str | None, where: str) -> None:
    if refusal is not None:
        raise ReadOnlyError(f"refused by the warehouse API ({where}): {refusal}")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as error:
        raise TerminalError(f"the request body is not JSON: {error}") from None
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        raise TerminalError('the request body must be a JSON object with "sql"')
    return body


def warehouse_routes(warehouse: Warehouse, *, allow_external: bool = False) -> list[Route]:
    """Routes under ``/v1/warehouse`` serving ``warehouse`` (``allow_external``: the owner's
    ``XP_SQL_ALLOW_EXTERNAL``)."""

    async def info(request: Request) -> Response:
        return JSONResponse({"kind": warehouse.kind, "location": warehouse.location})

    async def query(request: Request) -> Response:
        if _media_type(request) != "application/json":
            return _unsupported("application/json")
        try:
            body = await _json_body(request)
            _refuse(read_only_refusal(body["sql"], allow_external=allow_external), "query")
            parameters = decode_parameters(body.get("parameters"))
            read_only = bool(body.get("read_only", False))
            table = await run_in_threadpool(
                warehouse.query_arrow, body["sql"], parameters, read_only=read_only
            )
            data = await run_in_threadpool(arrow_to_ipc, table)
        except XpError as error:
            return _error(error)
        return Response(data, media_type=ARROW_STREAM)

    async def command(request: Request) -> Response:
        if _media_type(request) != "application/json":
            return _unsupported("application/json")
        try:
            body = await _json_body(request)
            _refuse(routed_write_refusal(body["sql"], allow_external=allow_external), "command")
            parameters = decode_parameters(body.get("parameters"))
            await run_in_threadpool(warehouse.command, body["sql"], parameters)
        except XpError as error:
            return _error(error)
        return JSONResponse({"ok": True})

    async def insert(request: Request) -> Response:
        if _media_type(request) != ARROW_STREAM:
            return _unsupported(ARROW_STREAM)
        table_name = request.query_params.get("table")
        token = request.query_params.get("dedup_token") or None
        try:
            if not table_name:
                raise TerminalError("insert needs ?table=database.name")
            _refuse(routed_insert_refusal(table_name), "insert")
            data = arrow_from_ipc(await request.body())
            rows = await run_in_threadpool(warehouse.insert_arrow, table_name, data, dedup_token=token)
        except XpError as error:
            return _error(error)
        return JSONResponse({"rows": rows})

    return [
        Route("/v1/warehouse", info, methods=["GET"]),
        Route("/v1/warehouse/query", query, methods=["POST"]),
        Route("/v1/warehouse/command", command, methods=["POST"]),
        Route("/v1/warehouse/insert", insert, methods=["POST"]),
    ]

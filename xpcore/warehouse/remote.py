"""A warehouse reached over the HTTP API of the process that owns the embedded store (`xp up`).

The same :class:`~xpcore.warehouse.base.Warehouse` Protocol as the adapters; `open_warehouse` returns
one when the chDB store is owned by a process that advertises an API (docs/decisions/0003 and 0011).

Wire format (served by :mod:`xpstream.up.warehouse_api`):

- ``GET  /v1/warehouse`` → ``{"kind", "location"}``
- ``POST /v1/warehouse/query`` JSON ``{"sql", "parameters", "read_only"}`` → Arrow IPC stream
- ``POST /v1/warehouse/command`` JSON ``{"sql", "parameters"}`` → ``{"ok": true}``
- ``POST /v1/warehouse/insert?table=db.name[&dedup_token=…]`` Arrow IPC stream → ``{"rows": n}``
- errors: ``{"error": {"type": "TerminalError", "message": "…"}}`` with a 4xx/5xx status; the client
  raises the same :mod:`xpcore.errors` class with the same message.
- auth: every ``/v1/`` request carries ``Authorization: Bearer <token>`` (the owner token from the
  store's lock file, or ``XP_API_TOKEN``); JSON bodies are ``application/json``; the server refuses a
  foreign ``Host``/``Origin`` and SQL outside what routed commands need (decisions 0031–0033).

Parameters travel as JSON with tags for what JSON lacks (datetimes, dates, decimals, UUIDs, tuples,
maps), so the owner binds exactly the values the caller passed (pure codec: :func:`encode_parameters`,
:func:`decode_parameters`).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xpcore import errors
from xpcore.errors import ConfigError, TerminalError, TransientError, XpError

if TYPE_CHECKING:
    import httpx
    import pyarrow as pa

__all__ = [
    "ARROW_STREAM",
    "RemoteWarehouse",
    "arrow_from_ipc",
    "arrow_to_ipc",
    "decode_parameters",
    "encode_parameters",
    "error_body",
    "error_from_body",
]

ARROW_STREAM = "application/vnd.apache.arrow.stream"

_ERROR_CLASSES: dict[str, type[XpError]] = {
    name: getattr(errors, name)
    for name in (
        "XpError",
        "TransientError",
        "TerminalError",
        "ConfigError",
        "ValidationError",
        "ReadOnlyError",
        "StoreBusyError",
        "NotYetAvailableError",
    )
}


# ---------------------------------------------------------------------------------------------- codec (pure)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return {"t": "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {"t": "uuid", "v": str(value)}
    if isinstance(value, bytes):
        return {"t": "bytes", "v": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return {"t": "tuple", "v": [_encode(v) for v in value]}
    if isinstance(value, list | set | frozenset):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {"t": "map", "v": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise TerminalError(f"cannot send a parameter of type {type(value).__name__} to the warehouse API")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag: Any = value.get("t")
    raw: Any = value.get("v")
    if tag == "datetime":
        return dt.datetime.fromisoformat(raw)
    if tag == "date":
        return dt.date.fromisoformat(raw)
    if tag == "decimal":
        return decimal.Decimal(raw)
    if tag == "uuid":
        return uuid.UUID(raw)
    if tag == "bytes":
        return base64.b64decode(raw)
    if tag == "tuple":
        return tuple(_decode(v) for v in raw)
    if tag == "map":
        return {_decode(k): _decode(v) for k, v in raw}
    raise TerminalError(f"unknown parameter tag {tag!r} in a warehouse API request")


def encode_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters as JSON-ready values (tagged where JSON has no type for them)."""
    return {str(name): _encode(value) for name, value in (parameters or {}).items()}


def decode_parameters(raw: Any) -> dict[str, Any]:
    """The inverse of :func:`encode_parameters` (a malformed body is a :class:`TerminalError`)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TerminalError("parameters must be a JSON object")
    try:
        return {str(name): _decode(value) for name, value in raw.items()}
    except (TypeError, ValueError, decimal.InvalidOperation) as error:
        raise TerminalError(f"malformed parameter in a warehouse API request: {error}") from None


def arrow_to_ipc(table: pa.Table) -> bytes:
    """A table as Arrow IPC stream bytes."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def arrow_from_ipc(data: bytes) -> pa.Table:
    """Arrow IPC stream bytes as a table."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as error:
        raise TerminalError(f"malformed Arrow IPC stream ({len(data)} bytes): {error}") from None


def error_body(error: XpError) -> dict[str, Any]:
    """The JSON body the API answers an error with."""
    name = next((c.__name__ for c in type(error).__mro__ if c.__name__ in _ERROR_CLASSES), "XpError")
    return {"error": {"type": name, "message": str(error)}}


def error_from_body(status: int, body: Any) -> XpError:
    """The error a client raises for an error answer (the server's class and message where known)."""
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        cls = _ERROR_CLASSES.get(str(detail.get("type")), TerminalError)
        return cls(str(detail.get("message", "")))
    if status in (401, 403):
        return ConfigError(f"the warehouse API refused the request (HTTP {status}): a token is required")
    return (
        TransientError(f"the warehouse API answered HTTP {status}")
        if status >= 500
        else TerminalError(f"the warehouse API answered HTTP {status}")
    )


# ---------------------------------------------------------------------------------------------- client


class RemoteWarehouse:
    """The store of another process (`xp up`) through its HTTP API."""

    def __init__(
        self,
        api_url: str,
        *,
        token: str | None = None,
        connect_timeout: float = 10.0,
        query_timeout: float = 300.0,
        client: httpx.Client | None = None,
    ) -> None:
        """Connect and check that the API answers (TransientError if not).

        ``client``: a ready httpx client (tests pass Starlette's TestClient).
        """
        import httpx

        self.api_url = api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if client is not None:
            client.headers.update(headers)
        self._client: httpx.Client | None = client or httpx.Client(
            base_url=self.api_url,
            headers=headers,
            timeout=httpx.Timeout(query_timeout, connect=connect_timeout),
            trust_env=False,
        )
        try:
            info = self._json("GET", "/v1/warehouse")
        except BaseException:
            self.close()
            raise
        self.kind = str(info.get("kind", "chdb"))
        self.location = f"{info.get('location', '?')} via {self.api_url}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        if self._client is None:
            raise TerminalError(f"the warehouse API client for {self.api_url} is closed")
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise TransientError(f"the warehouse API at {self.api_url} timed out: {error}") from None
        except httpx.TransportError as error:
            raise TransientError(f"the warehouse API at {self.api_url} is unreachable: {error}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise error_from_body(response.status_code, body)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self._request(method, path, **kwargs).json()
        return answer if isinstance(answer, dict) else {}

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows, in the owning process."""
        self._json(
            "POST", "/v1/warehouse/command", json={"sql": sql, "parameters": encode_parameters(parameters)}
        )

    def query_arrow(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> pa.Table:
        """Run a query in the owning process; ``read_only`` runs there on its ``readonly=2`` connection."""
        body = {"sql": sql, "parameters": encode_parameters(parameters), "read_only": read_only}
        return arrow_from_ipc(self._request("POST", "/v1/warehouse/query", json=body).content)

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        """Send ``data`` as an Arrow IPC stream; the owner inserts it with the same dedup token."""
        if data.num_rows == 0:
            return 0
        params = {"table": table, **({"dedup_token": dedup_token} if dedup_token else {})}
        answer = self._json(
            "POST",
            "/v1/warehouse/insert",
            params=params,
            content=arrow_to_ipc(data),
            headers={"Content-Type": ARROW_STREAM},
        )
        return int(answer.get("rows", data.num_rows))

    def close(self) -> None:
        """Close the HTTP client (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RemoteWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

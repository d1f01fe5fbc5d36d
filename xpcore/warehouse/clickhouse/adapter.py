"""The server warehouse: a ClickHouse server over HTTP(S) through clickhouse-connect.

Parameters are rendered by :func:`xpcore.warehouse.sqltext.render_parameters` (the same text the chDB
adapter sends) and bound server-side by clickhouse-connect (``param_<name>`` on the request).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from xpcore.errors import ConfigError, ReadOnlyError, TerminalError, TransientError, XpError
from xpcore.warehouse.sqlguard import read_only_refusal
from xpcore.warehouse.sqltext import (
    TRANSIENT_ERROR_CODES,
    error_code,
    one_line_error,
    qualified_table,
    render_parameters,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from xpcore.config import WarehouseSettings

__all__ = [
    "READ_ONLY_SETTINGS",
    "ClickHouseWarehouse",
    "WireText",
    "bound_parameters",
    "client_arguments",
    "redact_url",
]

logger = logging.getLogger(__name__)

READ_ONLY_SETTINGS = {"readonly": 2}
"""Sent with read-only queries: reads and settings changes only (``readonly=1`` would also refuse the
settings clickhouse-connect sends with each query)."""


def redact_url(url: str) -> str:
    """``url`` without user or password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def client_arguments(settings: WarehouseSettings) -> dict[str, Any]:
    """Keyword arguments for ``clickhouse_connect.get_client`` from the settings (pure; unit-tested).

    The URL gives scheme, host and port; user and password come from the URL or, when absent there,
    from ``XP_CLICKHOUSE_USER`` / ``XP_CLICKHOUSE_PASSWORD``. No default database is sent: the SQL names
    ``xp.`` explicitly and the database may not exist before the first migration.
    """
    url = settings.clickhouse_url or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"XP_CLICKHOUSE_URL must look like http(s)://host:port, got {redact_url(url)!r}")
    secure = parts.scheme == "https"
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError as error:
        raise ConfigError(f"XP_CLICKHOUSE_URL has an invalid port: {error}") from None
    return {
        "host": parts.hostname,
        "port": port,
        "interface": parts.scheme,
        "secure": secure,
        "username": unquote(parts.username) if parts.username else settings.clickhouse_user,
        "password": unquote(parts.password)
        if parts.password
        else settings.clickhouse_password.get_secret_value(),
        "connect_timeout": settings.clickhouse_connect_timeout,
        "send_receive_timeout": settings.clickhouse_query_timeout,
        "autogenerate_session_id": False,
        **_tls_arguments(settings, secure),
    }


def _tls_arguments(settings: WarehouseSettings, secure: bool) -> dict[str, Any]:
    """clickhouse-connect's TLS keywords: verification, the CA and a client certificate (https only)."""
    if not secure:
        return {}
    tls: dict[str, Any] = {"verify": settings.clickhouse_verify}
    if settings.clickhouse_ca_cert is not None:
        tls["ca_cert"] = str(settings.clickhouse_ca_cert)
    if settings.clickhouse_client_cert is not None:
        tls["client_cert"] = str(settings.clickhouse_client_cert)
    if settings.clickhouse_client_key is not None:
        tls["client_cert_key"] = str(settings.clickhouse_client_key)
    return tls


class WireText:
    """Parameter text clickhouse-connect must send untouched: it formats unknown types with ``str()``.

    Our text is already in the engine's wire form (:func:`~xpcore.warehouse.sqltext.wire_parameter`),
    the same bytes the chDB adapter sends.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"WireText({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WireText) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def bound_parameters(sql: str, parameters: Mapping[str, Any] | None) -> dict[str, WireText] | None:
    """Parameters as clickhouse-connect receives them (``None`` when there are none)."""
    rendered = render_parameters(sql, parameters)
    return {name: WireText(text) for name, text in rendered.items()} or None


_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^\"')\]]+)")
_READ_TIMEOUT = re.compile(r"(Read|Connect) timed out", re.IGNORECASE)


def unreachable_reason(message: str) -> str:
    """The cause inside a connection error's nested text (``Connection refused``, ``Name or service not
    known``, ``timed out``), with the hint to check the URL; the whole text only when none is found."""
    found = _OS_ERROR.search(message) or _READ_TIMEOUT.search(message)
    if found is None:
        return " ".join(message.split())[:300]
    cause = found.group(1) if found.re is _OS_ERROR else found.group(0)
    return f"{cause.strip().rstrip('.')} (check XP_CLICKHOUSE_URL and that the server is up)"


def _translate(error: Exception) -> XpError:
    from clickhouse_connect.driver import exceptions

    message = str(error)
    code = getattr(error, "code", None) or error_code(message)
    if isinstance(error, exceptions.OperationalError) and code is None:
        return TransientError(f"ClickHouse server unreachable: {unreachable_reason(message)}")
    line = one_line_error(message)
    return TransientError(line) if code in TRANSIENT_ERROR_CODES else TerminalError(line)


class ClickHouseWarehouse:
    """A ClickHouse server. Build with :meth:`connect`; tests hand a recording fake to the constructor."""

    kind = "clickhouse"

    def __init__(
        self, client: Any, location: str, *, allow_external: bool = False, cluster: str | None = None
    ) -> None:
        self._client = client
        self.location = location
        self.allow_external = allow_external
        self.cluster = cluster
        """``XP_CLICKHOUSE_CLUSTER``: statements go to the local tables (cluster_ddl.route_statement)."""

    @classmethod
    def connect(cls, settings: WarehouseSettings) -> ClickHouseWarehouse:
        """Connect to ``XP_CLICKHOUSE_URL`` (unreachable → TransientError, bad login → TerminalError)."""
        import clickhouse_connect
        from clickhouse_connect.driver import exceptions

        arguments = client_arguments(settings)
        try:
            client = clickhouse_connect.get_client(**arguments)
        except exceptions.Error as error:
            raise _translate(error) from None
        return cls(
            client,
            redact_url(settings.clickhouse_url or ""),
            allow_external=settings.sql_allow_external,
            cluster=settings.clickhouse_cluster,
        )

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver import exceptions

        if self._client is None:
            raise TerminalError(f"ClickHouse connection to {self.location} is closed")
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except exceptions.Error as error:
            raise _translate(error) from None

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (on a cluster: mutations to the local tables)."""
        if self.cluster:
            from xpcore.warehouse.cluster_ddl import route_statement

            sql = route_statement(sql, self.cluster)
        self._call("command", sql, parameters=bound_parameters(sql, parameters))

    def query_arrow(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> pa.Table:
        """Run a query and return a pyarrow Table (strings as Arrow strings, like chDB).

        ``read_only``: the lexical guard first (:mod:`xpcore.warehouse.sqlguard`: no writes, nothing
        external unless ``XP_SQL_ALLOW_EXTERNAL``), then ``readonly=2`` on the server. The server's own
        line of defence is its user: give xpstream's user no FILE/URL/REMOTE/S3 source grants
        (docs/operations.md).
        """
        if read_only:
            refusal = read_only_refusal(sql, allow_external=self.allow_external)
            if refusal is not None:
                raise ReadOnlyError(f"refused on a read-only path: {refusal}")
        return self._call(
            "query_arrow",
            sql,
            parameters=bound_parameters(sql, parameters),
            settings=dict(READ_ONLY_SETTINGS) if read_only else None,
            use_strings=True,
        )

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        """Insert with ``FORMAT Arrow``; ``dedup_token`` becomes ``insert_deduplication_token``."""
        database, name = qualified_table(table)
        if data.num_rows == 0:
            return 0
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        self._call("insert_arrow", name, data, database=database, settings=settings)
        return int(data.num_rows)

    def close(self) -> None:
        """Close the HTTP connection pool (idempotent)."""
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def __enter__(self) -> ClickHouseWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

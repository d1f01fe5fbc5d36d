"""The warehouse: one interface (:class:`Warehouse`), two adapters, migrations, named queries.

``open_warehouse(settings)`` picks the adapter (a ClickHouse server when ``XP_CLICKHOUSE_URL`` is set,
else the embedded chDB store under ``$XP_HOME/warehouse``) and applies pending migrations. When another
process owns the embedded store and serves it over HTTP (`xp up`), or ``XP_API_URL`` names such a
process, it returns a :class:`~xpcore.warehouse.remote.RemoteWarehouse` talking to that process
instead (its owner has applied the migrations), authenticated with the token the owner wrote into its
lock file (0600; docs/decisions/0031-up-api-owner-token.md) unless ``XP_API_TOKEN`` gives one. Adapters
and their client libraries are imported only when opened, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xpcore.errors import TransientError
from xpcore.warehouse.base import Warehouse
from xpcore.warehouse.migrations import DATABASE, apply_migrations, load_query

if TYPE_CHECKING:
    from xpcore.config import WarehouseSettings

__all__ = ["DATABASE", "Warehouse", "load_query", "open_warehouse"]


def open_warehouse(settings: WarehouseSettings, *, migrate: bool = True) -> Warehouse:
    """Open the configured warehouse; with ``migrate``, apply pending migrations first.

    Embedded mode: when another process owns the store and advertises an API URL, returns a
    :class:`~xpcore.warehouse.remote.RemoteWarehouse` on it (no migrations: the owner applied them);
    raises :class:`~xpcore.errors.StoreBusyError` when the owner serves no API (its ``owner``
    attribute carries the pid) or its API does not answer (docs/decisions/0003-store-ownership.md).
    """
    warehouse: Warehouse
    if settings.clickhouse_url:
        from xpcore.warehouse.clickhouse import ClickHouseWarehouse

        warehouse = ClickHouseWarehouse.connect(settings)
    else:
        from xpcore.warehouse.chdb import ChdbWarehouse, StoreOwnedError

        explicit, _ = settings.up_api()
        if explicit:
            return _remote(settings, explicit, _owner_token(settings, explicit))
        try:
            warehouse = ChdbWarehouse(
                settings.warehouse_path,
                wait_seconds=settings.store_wait_seconds,
                allow_external=settings.sql_allow_external,
            )
        except StoreOwnedError as error:
            if not error.owner.api_url:
                raise
            # Routing (decision 0003 step 3): the owner serves the store; go through its API.
            try:
                return _remote(settings, error.owner.api_url, error.owner.api_token)
            except TransientError as unreachable:
                error.args = (f"{error}, but that API does not answer ({unreachable}): wait or stop it",)
                raise error from None
    if migrate and settings.clickhouse_url and settings.clickhouse_cluster:
        try:
            _require_cluster_schema(warehouse, settings.clickhouse_cluster)
        except BaseException:
            warehouse.close()
            raise
    elif migrate:
        try:
            apply_migrations(warehouse)
        except BaseException:
            warehouse.close()
            raise
    return warehouse


def _require_cluster_schema(warehouse: Warehouse, cluster: str) -> None:
    """On a cluster the application applies no migration: it checks `xp warehouse ddl` applied them all."""
    from xpcore.warehouse.cluster_ddl import pending_on_cluster
    from xpcore.warehouse.migrations import applied_migrations, discover_migrations, plan_migrations

    error = pending_on_cluster(plan_migrations(discover_migrations(), applied_migrations(warehouse)), cluster)
    if error is not None:
        raise error


def _owner_token(settings: WarehouseSettings, api_url: str) -> str | None:
    """The token of the local store's owner, when it advertises exactly ``api_url`` (never sent
    elsewhere)."""
    from xpcore.warehouse.chdb import read_owner

    owner = read_owner(settings.warehouse_path.resolve())
    if owner is None or not owner.api_url or owner.api_url.rstrip("/") != api_url.rstrip("/"):
        return None
    return owner.api_token


def _remote(settings: WarehouseSettings, api_url: str, owner_token: str | None = None) -> Warehouse:
    from xpcore.warehouse.remote import RemoteWarehouse

    _, token = settings.up_api()
    secret = token.get_secret_value() if token is not None else None
    return RemoteWarehouse(
        api_url,
        token=secret or owner_token or None,
        connect_timeout=settings.clickhouse_connect_timeout,
        query_timeout=settings.clickhouse_query_timeout,
    )

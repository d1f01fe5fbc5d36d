"""The warehouse: one interface (:class:`Warehouse`), two adapters, migrations, named queries.

``open_warehouse(settings)`` picks the adapter (a ClickHouse server when ``XP_CLICKHOUSE_URL`` is set,
else the embedded chDB store under ``$XP_HOME/warehouse``) and applies pending migrations. Adapters and
their client libraries are imported only when opened, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xpstream.warehouse.base import Warehouse
from xpstream.warehouse.migrations import DATABASE, apply_migrations, load_query

if TYPE_CHECKING:
    from xpstream.config import WarehouseSettings

__all__ = ["DATABASE", "Warehouse", "load_query", "open_warehouse"]


def open_warehouse(settings: WarehouseSettings, *, migrate: bool = True) -> Warehouse:
    """Open the configured warehouse; with ``migrate``, apply pending migrations first.

    Embedded mode: raises :class:`~xpstream.errors.StoreBusyError` when another process owns the store
    (its ``owner`` attribute carries the pid and, once ``xp up`` exists, the API URL to route through;
    see docs/decisions/0003-store-ownership.md).
    """
    warehouse: Warehouse
    if settings.clickhouse_url:
        from xpstream.warehouse.clickhouse import ClickHouseWarehouse

        warehouse = ClickHouseWarehouse.connect(settings)
    else:
        from xpstream.warehouse.chdb import ChdbWarehouse

        # Seam for issue #7: on StoreOwnedError whose owner advertises an api_url, return an HTTP-backed
        # Warehouse talking to that owner instead of failing.
        warehouse = ChdbWarehouse(settings.warehouse_path, wait_seconds=settings.store_wait_seconds)
    if migrate:
        try:
            apply_migrations(warehouse)
        except BaseException:
            warehouse.close()
            raise
    return warehouse

"""Embedded warehouse adapter (chDB); with ``clickhouse/``, the only code importing a ClickHouse client."""

from xpcore.warehouse.chdb.adapter import ChdbWarehouse
from xpcore.warehouse.chdb.ownership import StoreOwnedError, StoreOwner, read_owner

__all__ = ["ChdbWarehouse", "StoreOwnedError", "StoreOwner", "read_owner"]

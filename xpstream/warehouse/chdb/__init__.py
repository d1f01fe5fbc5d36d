"""Embedded warehouse adapter (chDB); with ``clickhouse/``, the only code importing a ClickHouse client."""

from xpstream.warehouse.chdb.adapter import ChdbWarehouse
from xpstream.warehouse.chdb.ownership import StoreOwnedError, StoreOwner, read_owner

__all__ = ["ChdbWarehouse", "StoreOwnedError", "StoreOwner", "read_owner"]

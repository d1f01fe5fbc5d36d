"""Server warehouse adapter (clickhouse-connect); with ``chdb/``, the only code importing a client."""

from xpcore.warehouse.clickhouse.adapter import ClickHouseWarehouse, client_arguments

__all__ = ["ClickHouseWarehouse", "client_arguments"]

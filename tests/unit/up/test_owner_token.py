"""The owner token of `xp up` (issue #13 item 1): written 0600 with the API URL, read by local commands,
never sent to another URL, withdrawn with the URL."""

from __future__ import annotations

import stat
from pathlib import Path

from xpcore.config import WarehouseSettings
from xpcore.warehouse import _owner_token
from xpcore.warehouse.chdb.ownership import LOCK_FILE, acquire_store, read_owner


def test_the_owner_token_is_private_and_only_sent_to_its_own_api(tmp_path: Path) -> None:
    settings = WarehouseSettings(home=tmp_path, clickhouse_url=None)
    lock = acquire_store(settings.warehouse_path)
    try:
        lock.advertise("http://127.0.0.1:8210", "tok-123")
        path = settings.warehouse_path / LOCK_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(settings.warehouse_path.stat().st_mode) == 0o700
        owner = read_owner(settings.warehouse_path.resolve())
        assert owner is not None and owner.api_token == "tok-123"
        assert "tok-123" not in repr(owner)
        assert _owner_token(settings, "http://127.0.0.1:8210/") == "tok-123"
        assert _owner_token(settings, "http://evil.example:8210") is None
        lock.advertise(None, "tok-123")
        assert "tok-123" not in path.read_text()
        assert _owner_token(settings, "http://127.0.0.1:8210") is None
    finally:
        lock.release()

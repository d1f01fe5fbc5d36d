"""The warehouse API's wire format (pure): parameters, Arrow IPC, errors."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pyarrow as pa
import pytest

from xpcore.errors import ReadOnlyError, StoreBusyError, TerminalError, TransientError
from xpcore.warehouse.remote import (
    arrow_from_ipc,
    arrow_to_ipc,
    decode_parameters,
    encode_parameters,
    error_body,
    error_from_body,
)

PARAMETERS = {
    "s": "text with 'quotes'",
    "i": 7,
    "f": 0.25,
    "b": False,
    "n": None,
    "t": dt.datetime(2026, 11, 25, 20, 1, 2, 345678, tzinfo=dt.UTC),
    "naive": dt.datetime(2026, 11, 25, 20, 1, 2),
    "d": dt.date(2026, 11, 25),
    "dec": decimal.Decimal("1.050"),
    "u": uuid.UUID(int=5),
    "raw": b"\x00\xff",
    "tuple": (1, "x"),
    "list": ["a", ["b"]],
    "map": {"k": 1, 2: [dt.date(2026, 1, 1)]},
}


def test_parameters_survive_json_exactly() -> None:
    wire = json.loads(json.dumps(encode_parameters(PARAMETERS)))
    decoded = decode_parameters(wire)
    assert decoded == PARAMETERS
    assert type(decoded["tuple"]) is tuple and type(decoded["dec"]) is decimal.Decimal
    assert decoded["t"].tzinfo is not None and decoded["naive"].tzinfo is None


def test_unsupported_or_malformed_parameters_are_terminal() -> None:
    with pytest.raises(TerminalError, match="cannot send a parameter of type object"):
        encode_parameters({"x": object()})
    with pytest.raises(TerminalError, match="unknown parameter tag"):
        decode_parameters({"x": {"t": "pickle", "v": "..."}})
    with pytest.raises(TerminalError, match="malformed parameter"):
        decode_parameters({"x": {"t": "datetime", "v": "yesterday"}})
    with pytest.raises(TerminalError, match="JSON object"):
        decode_parameters(["x"])
    assert decode_parameters(None) == {}


def test_arrow_round_trip_keeps_types_and_empty_results() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.uint32()),
            "at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * 2, pa.timestamp("ms", tz="UTC")),
            "tags": pa.array([["a"], []], pa.list_(pa.string())),
        }
    )
    assert arrow_from_ipc(arrow_to_ipc(table)).equals(table)
    empty = pa.Table.from_batches([], schema=pa.schema([]))
    assert arrow_from_ipc(arrow_to_ipc(empty)).num_rows == 0
    with pytest.raises(TerminalError, match="malformed Arrow IPC stream"):
        arrow_from_ipc(b"not arrow")


def test_errors_cross_the_wire_with_their_class() -> None:
    for error in (ReadOnlyError("no writes"), TransientError("later"), StoreBusyError("busy")):
        back = error_from_body(400, json.loads(json.dumps(error_body(error))))
        assert type(back) is type(error) and str(back) == str(error)
    assert isinstance(error_from_body(401, None), TerminalError)
    assert "token" in str(error_from_body(401, None))
    assert isinstance(error_from_body(502, "gateway"), TransientError)
    assert isinstance(error_from_body(404, {"detail": "x"}), TerminalError)


def test_api_token_setting_reaches_the_remote_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import xpcore.warehouse as warehouse_module
    import xpcore.warehouse.remote as remote_module
    from xpcore.config import CoreSettings

    seen: dict[str, object] = {}

    class Recorder:
        def __init__(self, api_url: str, **kwargs: object) -> None:
            seen.update(api_url=api_url, **kwargs)

    monkeypatch.setattr(remote_module, "RemoteWarehouse", Recorder)
    monkeypatch.setenv("XP_API_TOKEN", "s3cret")
    warehouse_module._remote(CoreSettings(), "http://10.0.0.5:8210")
    assert seen["api_url"] == "http://10.0.0.5:8210"
    assert seen["token"] == "s3cret"

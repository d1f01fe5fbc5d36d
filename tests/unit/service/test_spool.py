"""The spool file: format roundtrip, in-order replay with a persisted cursor, torn tails, locking."""

from __future__ import annotations

from pathlib import Path

import pytest

from assignment.service.spool import Spool, decode_line, encode_line
from xpstream.errors import ConfigError


def test_line_roundtrip_keeps_value_bytes_exactly() -> None:
    value = b'{"exposure_id":"e1","unit_id":"u\\n1","x":[1,2.50,{"a":null}]}'
    line = encode_line("xp.exposures", "u\n1", value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line) == ("xp.exposures", "u\n1", value)
    assert decode_line(encode_line("xp.dead-letters", None, b"{}")) == ("xp.dead-letters", None, b"{}")
    with pytest.raises(ValueError):
        encode_line("t", None, b'{"a":\n1}')
    with pytest.raises(ValueError):
        decode_line(b"garbage\n")


def test_replay_in_order_with_cursor_across_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(10):
            spool.append("xp.exposures", f"u{i}", b'{"i":%d}' % i)
        first = spool.read_batch(4)
        assert [e.key for e in first] == ["u0", "u1", "u2", "u3"]
        spool.advance(first[-1].end_offset)
    with Spool(tmp_path) as spool:  # the cursor survived
        rest = spool.read_batch(100)
        assert [e.value for e in rest] == [b'{"i":%d}' % i for i in range(4, 10)]
        spool.append("xp.exposures", "u10", b'{"i":10}')
        assert [e.key for e in spool.read_batch(100)][-1] == "u10"
        spool.advance(spool.read_batch(100)[-1].end_offset)
        assert spool.empty and spool.path.stat().st_size == 0  # drained: reset
        assert not spool.cursor_path.exists()


def test_torn_tail_is_cut_and_corrupt_lines_skipped(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append("xp.exposures", "a", b'{"a":1}')
        spool.append("xp.exposures", "b", b'{"b":1}')
    with (tmp_path / "service.jsonl").open("ab") as raw:
        raw.write(b"not json\n")
        raw.write(b'{"topic":"xp.exposures","key":"c","val')  # crash mid-write
    with Spool(tmp_path) as spool:
        entries = spool.read_batch(10)
        assert [e.key for e in entries] == ["a", "b"]  # corrupt line skipped, torn tail cut
        spool.append("xp.exposures", "d", b'{"d":1}')
        assert [e.key for e in spool.read_batch(10)] == ["a", "b", "d"]


def test_one_process_per_spool(tmp_path: Path) -> None:
    # flock is per open file description, so a second open in this process conflicts too
    with Spool(tmp_path), pytest.raises(ConfigError, match="another running service"):
        Spool(tmp_path).open()

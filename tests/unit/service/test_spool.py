"""The spool file: format roundtrip, in-order replay with a persisted cursor, torn tails, locking."""

from __future__ import annotations

from pathlib import Path

import pytest

from assignment.service.spool import Spool, SpoolFull, decode_line, encode_line
from xpcore.errors import ConfigError


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
        assert spool.empty and spool.path.stat().st_size == 0  # drained: a new, empty segment
        assert [p.stat().st_size for p in tmp_path.glob("service-*.jsonl")] == [0]


def test_torn_tail_is_cut_and_corrupt_lines_skipped(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append("xp.exposures", "a", b'{"a":1}')
        spool.append("xp.exposures", "b", b'{"b":1}')
    (segment,) = tmp_path.glob("service-*.jsonl")
    with segment.open("ab") as raw:
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


def test_private_modes(tmp_path: Path) -> None:
    import stat

    directory = tmp_path / "spool"
    with Spool(directory) as spool:
        spool.append("xp.exposures", "a", b'{"a":1}')
        spool.advance(spool.read_batch(1)[0].end_offset - 1)  # writes the cursor file
        spool.append("xp.exposures", "b", b'{"b":1}')
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.iterdir())
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files
    ]
    directory.chmod(0o755)  # an existing world-readable spool is tightened on open
    with Spool(directory):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_segments_roll_and_delivered_ones_are_deleted(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=200) as spool:
        ends = spool.append_many([("xp.exposures", f"u{i}", b'{"i":%d}' % i) for i in range(40)])
        for i in range(40, 60):
            ends.append(spool.append("xp.exposures", f"u{i}", b'{"i":%d}' % i))
        segments = sorted(tmp_path.glob("service-*.jsonl"))
        assert len(segments) > 3
        assert [e.key for e in spool.read_batch(100)] == [f"u{i}" for i in range(60)]
        spool.advance(ends[44])
        assert len(sorted(tmp_path.glob("service-*.jsonl"))) < len(segments)
    with Spool(tmp_path, segment_bytes=200) as spool:  # cursor and segments survive a reopen
        assert [e.key for e in spool.read_batch(100)] == [f"u{i}" for i in range(45, 60)]


def test_bounded(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=320) as spool:
        spool.append("xp.exposures", "a", b'{"x":"' + b"a" * 100 + b'"}')
        spool.append("xp.exposures", "b", b'{"x":"' + b"b" * 100 + b'"}')
        size = spool.size
        with pytest.raises(SpoolFull):
            spool.append("xp.exposures", "c", b'{"x":"' + b"c" * 100 + b'"}')
        assert spool.size == size  # nothing written
        spool.advance(spool.read_batch(1)[0].end_offset)  # delivery frees room
        spool.append("xp.exposures", "c", b'{"x":"' + b"c" * 100 + b'"}')
        assert [e.key for e in spool.read_batch(10)] == ["b", "c"]


def test_written_before_append_returns_and_legacy_file_is_adopted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append("xp.exposures", "a", b'{"a":1}')
    # a process killed now: the record is in the file already (no buffering in the process)
    assert b'"key":"a"' in b"".join(p.read_bytes() for p in tmp_path.glob("service-*.jsonl"))
    spool.close()
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "service.jsonl").write_bytes(encode_line("xp.exposures", "z", b"{}"))
    with Spool(legacy) as spool:
        assert [e.key for e in spool.read_batch(10)] == ["z"]

"""FieldLists: each field read once and shared; ``taken`` keeps the lists aligned with the kept records."""

from __future__ import annotations

from pipelines.field_lists import FieldLists
from tests.unit.pipeline.helpers import event, minutes


def test_a_field_is_read_once_and_taken_lists_stay_aligned() -> None:
    records = [event(f"e{n}", f"u{n % 3}", at=minutes(n)) for n in range(6)]
    fields = FieldLists(records)
    ids = fields["event_id"]
    assert ids == [f"e{n}" for n in range(6)] and fields["event_id"] is ids  # the same list, not re-read
    kept_records = [records[n] for n in (1, 4, 5)]
    kept = fields.taken([1, 4, 5], kept_records)
    assert kept["event_id"] == ["e1", "e4", "e5"]  # read before: taken
    assert kept["unit_id"] == ["u1", "u1", "u2"]  # not read before: read from the kept records
    assert kept["occurred_at"] == [minutes(1), minutes(4), minutes(5)]

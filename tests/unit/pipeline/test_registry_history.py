"""Which registry records the stream copies into xp.registry."""

from __future__ import annotations

from pipelines.registry_history import records_to_store
from tests.unit.registry.helpers import experiment, record


def test_only_records_not_stored_yet_are_kept_once_in_order() -> None:
    first, second, third = (record(experiment(f"exp-{i}", weights=(0.5, 0.5))) for i in range(3))
    assert records_to_store([first, second, third, second], {first.record_id}) == [second, third]
    assert records_to_store([], set()) == []
    assert records_to_store([first], {first.record_id}) == []

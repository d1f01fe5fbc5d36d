"""The dead letters of a batch that go to the dead-letter topic, as the bytes produced there.

The stream's own rejects (records of its input topics) are produced to ``xp.dead-letters`` after their
rows are loaded; the ones read from that topic (the collector's) are there already. Pure: a runner
produces what :func:`dead_letters_for_topic` returns with its own producer.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from schemas import DeadLetter

__all__ = ["dead_letters_for_topic", "encode_dead_letter"]


def dead_letters_for_topic(
    dead_letters: list[DeadLetter], input_topics: Collection[str], max_record_bytes: int
) -> list[tuple[bytes | None, bytes]]:
    """``(key, value)`` to produce for each dead letter of a record of ``input_topics``, in order."""
    return [
        (dead.original_key, encode_dead_letter(dead, max_record_bytes))
        for dead in dead_letters
        if dead.source_topic in input_topics
    ]


def encode_dead_letter(dead: DeadLetter, max_record_bytes: int) -> bytes:
    """JSON of a dead letter for the topic; a too-large original is omitted there (the table keeps it)."""
    data = msgspec.json.encode(dead)
    if len(data) > max_record_bytes:
        dead = msgspec.structs.replace(
            dead,
            original=b"",
            detail=f"{dead.detail} (original of {len(dead.original)} bytes omitted; kept in xp.dead_letters)",
        )
        data = msgspec.json.encode(dead)
    return data

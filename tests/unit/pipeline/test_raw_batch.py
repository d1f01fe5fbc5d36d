"""A batch read as columns (pipelines/raw_batch.py) holds exactly the records a per-message loop reads,
and every way of taking records from it (topic split, positions, spans) keeps them aligned."""

from __future__ import annotations

import random

import numpy as np
import pytest
from confluent_kafka import KafkaError, Message

from pipelines.batch_topics import of_topic, offset_ranges, topic_codes
from pipelines.kafka_runner import raw_records
from pipelines.kernel import RawRecord
from pipelines.raw_batch import RawBatch, kafka_millis

TOPICS = ("p.xp.exposures", "p.xp.events", "p.xp.dead-letters")


def record_of(message: Message) -> RawRecord:
    """The record of one message, read field by field (what the columns must agree with)."""
    kind, millis = message.timestamp()
    return RawRecord(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.value(),
        millis if kind != 0 and millis >= 0 else None,
    )


def messages(rng: random.Random, count: int, *, runs: bool) -> list[Message]:
    out: list[Message] = []
    topic = rng.choice(TOPICS)
    for offset in range(count):
        if not runs or rng.random() < 0.05:
            topic = rng.choice(TOPICS)
        stamp = rng.choice([(1, 1_700_000_000_000 + offset), (2, 1_700_000_000_000), (0, -1), (1, -1)])
        out.append(
            Message(
                topic=topic,
                partition=rng.randrange(4),
                offset=offset,
                key=rng.choice([None, b"", f"u{offset}".encode()]),
                value=rng.choice([None, b"", b'{"a":1}', bytes(rng.randrange(256) for _ in range(5))]),
                timestamp=stamp,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_columns_hold_what_a_per_message_loop_reads(seed: int) -> None:
    rng = random.Random(seed)
    batch = messages(rng, 300, runs=seed % 2 == 0)
    expected = [record_of(message) for message in batch]
    raws = raw_records(batch)
    assert isinstance(raws, RawBatch)
    assert list(raws) == expected and raws == expected and len(raws) == len(expected)
    assert [raws[index] for index in range(len(raws))] == expected
    assert raws[10:20] == expected[10:20]
    assert RawBatch.of(expected) == expected  # a list of records (Faust, Flink runners) transposed


def test_timestamps_unavailable_or_negative_are_none() -> None:
    assert list(kafka_millis([(1, 5), (2, 7)])) == [5, 7]
    assert list(kafka_millis([(1, 5), (0, 7), (1, -1)])) == [5, None, None]
    assert list(kafka_millis([])) == []


def test_messages_with_errors_are_left_out_in_order() -> None:
    good = [Message(topic="t", partition=0, offset=n, value=b"v", timestamp=(1, n)) for n in range(3)]
    eof = Message(topic="t", partition=0, error=KafkaError(KafkaError._PARTITION_EOF))
    raws = raw_records([good[0], eof, good[1], good[2]])
    assert [raw.offset for raw in raws] == [0, 1, 2]


@pytest.mark.parametrize("seed", range(8))
def test_topic_split_positions_and_ranges_agree_with_the_records(seed: int) -> None:
    rng = random.Random(seed)
    expected = [record_of(message) for message in messages(rng, 500, runs=seed % 2 == 0)]
    raws = RawBatch.of(expected)
    coded = topic_codes(raws)
    for topic in (*TOPICS, "p.xp.other", None):
        assert of_topic(raws, coded, topic) == [raw for raw in expected if raw.topic == topic]
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for raw in expected:
        first, last = ranges.get((raw.topic, raw.partition), (raw.offset, raw.offset))
        ranges[(raw.topic, raw.partition)] = (min(first, raw.offset), max(last, raw.offset))
    assert offset_ranges(raws, coded) == ranges and list(offset_ranges(raws, coded)) == list(ranges)
    positions = sorted(rng.sample(range(len(expected)), 40))
    assert raws.taken(positions) == [expected[p] for p in positions]
    assert raws.taken(positions[:1]) == [expected[positions[0]]] and raws.taken([]) == []
    keep = [rng.random() < 0.5 for _ in expected]
    assert raws.compressed(keep) == [raw for raw, kept in zip(expected, keep, strict=True) if kept]
    assert raws.spans([(3, 9), (20, 20), (400, 450)]) == expected[3:9] + expected[400:450]


def test_many_interleaved_runs_are_taken_record_by_record() -> None:
    expected = [RawRecord(TOPICS[n % 2], 0, n, None, b"v", n) for n in range(2_000)]  # 2,000 runs of one
    raws = RawBatch.of(expected)
    assert of_topic(raws, topic_codes(raws), TOPICS[1]) == expected[1::2]


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        RawBatch(["t"], [0], [0], [None], [b"v"], [])
    assert np.array_equal(np.array(RawBatch.of([]).offsets, np.int64), np.zeros(0, np.int64))

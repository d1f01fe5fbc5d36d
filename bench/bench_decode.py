"""What decoding a metric event costs, and how much of it is ``MetricEvent.__post_init__`` (issue #22).

The stream kernel decodes every record with msgspec into a ``MetricEvent``, whose ``__post_init__``
checks the time (UTC, whole milliseconds, years 1900–2300) and normalises it otherwise. Baseline, same
run: a twin struct with the same fields, constraints and defaults (``msgspec.defstruct``) and no
``__post_init__``, decoding the same bench events. CPU time per record, each decoder ``--rounds`` times,
alternating; the first round warms up and is not counted.

    .venv/bin/python bench/bench_decode.py [--events 200000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import typing
from datetime import UTC, datetime

import msgspec

from bench._workload import unit_events
from schemas import MetricEvent


def _twin() -> type[msgspec.Struct]:
    """``MetricEvent``'s fields, types (with their constraints) and defaults, without ``__post_init__``."""
    hints = typing.get_type_hints(MetricEvent, include_extras=True)
    names = MetricEvent.__struct_fields__
    defaults = dict(
        zip(
            names[len(names) - len(MetricEvent.__struct_defaults__) :],
            MetricEvent.__struct_defaults__,
            strict=True,
        )
    )
    fields = [
        (name, hints[name], defaults[name]) if name in defaults else (name, hints[name]) for name in names
    ]
    return msgspec.defstruct("MetricEventTwin", fields, frozen=True, kw_only=True, gc=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(7)
    base = datetime(2026, 11, 26, tzinfo=UTC)
    values = [
        msgspec.json.encode(event)
        for unit in range(args.events // 20)
        for event in unit_events(f"u7-{unit}", 20, base, rng)
    ]
    decoders = {
        "MetricEvent": msgspec.json.Decoder(MetricEvent),
        "twin without __post_init__ (baseline)": msgspec.json.Decoder(_twin()),
    }
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for round_ in range(args.rounds + 1):
        for name, decoder in decoders.items():
            began = time.process_time()
            decoded = list(map(decoder.decode, values))
            elapsed = time.process_time() - began
            if round_:
                times[name].append(elapsed / len(decoded) * 1e9)
    for name, per_record in times.items():
        print(
            f"{name:40s} median {statistics.median(per_record):5.0f} ns per record  ({len(values):,} events)"
        )


if __name__ == "__main__":
    main()

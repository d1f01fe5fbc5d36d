"""`xp loadgen`: simulated users meeting the running experiments, produced to Kafka.

- :mod:`xpstream.loadgen.simulate`: the pure simulator (assignment engine → records + expected counts)
- :mod:`xpstream.loadgen.invalid`: the documented mix of invalid records the stream must reject
- :mod:`xpstream.loadgen.sources`: where experiments come from (registry, GrowthBook payload, YAML)
- :mod:`xpstream.loadgen.ratelimit`: a token bucket (pure, injectable clock)
- :mod:`xpstream.loadgen.produce`: the thin confluent-kafka producer

See docs/loadgen.md for the options and the counting contract.
"""

from __future__ import annotations

from xpstream.loadgen.simulate import (
    LoadgenCounts,
    LoadgenOptions,
    OutRecord,
    simulate_records,
)
from xpstream.loadgen.sources import experiments_from_payload

__all__ = ["LoadgenCounts", "LoadgenOptions", "OutRecord", "experiments_from_payload", "simulate_records"]

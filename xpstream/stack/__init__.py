"""The local single-machine stack: a real Apache Kafka broker (KRaft) started from Maven-resolved jars.

:func:`start_kafka` / :func:`stop_kafka` / :func:`stack_status` back `xp stack up|down|status` and the
tests' session fixture. The file layout and broker configuration are pure (:mod:`.layout`); pid files,
ports and logs are in :mod:`.process`.
"""

from __future__ import annotations

from xpstream.stack.launcher import (
    StartResult,
    StopResult,
    kafka_status,
    layout_for,
    local_kafka_settings,
    stack_status,
    start_kafka,
    stop_kafka,
)
from xpstream.stack.layout import KAFKA_VERSION, KafkaLayout

__all__ = [
    "KAFKA_VERSION",
    "KafkaLayout",
    "StartResult",
    "StopResult",
    "kafka_status",
    "layout_for",
    "local_kafka_settings",
    "stack_status",
    "start_kafka",
    "stop_kafka",
]

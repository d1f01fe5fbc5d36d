"""A consume error that no retry can fix (the principal is not allowed) stops the worker with one line;
other consume errors are logged and the worker goes on (the bench's worker spun for minutes on
GROUP_AUTHORIZATION_FAILED before this)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from pipelines.kafka_runner import raw_records as _raws
from xpcore.errors import ConfigError


class ErrorMessage:
    def __init__(self, code: int) -> None:
        self._error = KafkaError(code)

    def error(self) -> KafkaError:
        return self._error


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    ],
)
def test_an_authorization_refusal_stops_the_worker_with_one_line(code: int) -> None:
    with pytest.raises(ConfigError, match="Kafka refused the stream worker") as raised:
        _raws([ErrorMessage(code)])
    assert "\n" not in str(raised.value) and "operations.md#kafka-security" in str(raised.value)


def test_other_consume_errors_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    assert _raws([ErrorMessage(KafkaError._PARTITION_EOF), ErrorMessage(KafkaError._TRANSPORT)]) == []
    assert "Kafka consume error" in caplog.text

"""Alerts: which outcomes fire or resolve an alert (pure), and delivering them (Kafka, webhook).

Outcomes are grouped by fingerprint (``check|experiment|table``). A failing fingerprint fires when it was
not firing before, or when it is still failing and the quiet period has passed since it last fired (a
reminder); a passing fingerprint that was firing resolves. Anything else stays quiet, so the same ongoing
problem does not alert again on every run. The state comes from ``xp.alerts`` (latest row per fingerprint).

Delivery never raises: the table is written by the caller; the topic ``xp.alerts`` and the webhook are
best effort and their failures are reported in :class:`AlertDelivery`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from quality.outcomes import CheckOutcome

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = [
    "AlertDelivery",
    "AlertRecord",
    "AlertState",
    "decide_alerts",
    "post_webhook",
    "produce_alerts",
    "slack_message",
]

logger = logging.getLogger(__name__)

State = Literal["firing", "resolved"]
MAX_SECTIONS = 45
"""Slack accepts at most 50 blocks per message."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """What ``xp.alerts`` says about one fingerprint."""

    firing: bool
    last_fired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert state change: a row of ``xp.alerts`` and a record on the topic."""

    alert_id: str
    fingerprint: str
    state: State
    check: str
    experiment: str | None
    table: str | None
    detail: str
    run_id: str
    at: datetime
    reminder: bool = False
    """Still failing after the quiet period (not a new problem)."""

    def to_row(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "fingerprint": self.fingerprint,
            "state": self.state,
            "check": self.check,
            "experiment": self.experiment,
            "table_name": self.table,
            "detail": self.detail,
            "run_id": self.run_id,
            "at": self.at,
        }

    def to_json(self) -> dict[str, Any]:
        document = self.to_row()
        document["at"] = self.at.isoformat()
        document["table"] = document.pop("table_name")
        return document


def decide_alerts(
    outcomes: Sequence[CheckOutcome],
    previous: Mapping[str, AlertState],
    *,
    run_id: str,
    now: datetime,
    quiet: timedelta,
) -> list[AlertRecord]:
    """The alert state changes this run causes (see the module docstring)."""
    groups: dict[str, list[CheckOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.fingerprint, []).append(outcome)
    records: list[AlertRecord] = []
    for key, group in groups.items():
        failed = [o for o in group if not o.success]
        before = previous.get(key, AlertState(firing=False))
        first = group[0]

        def record(
            state: State, detail: str, *, reminder: bool = False, first: CheckOutcome = first, key: str = key
        ) -> None:
            records.append(
                AlertRecord(
                    uuid.uuid4().hex,
                    key,
                    state,
                    first.check,
                    first.experiment,
                    first.table,
                    detail,
                    run_id,
                    now,
                    reminder,
                )
            )

        if failed:
            detail = "; ".join(o.detail for o in failed)
            if not before.firing:
                record("firing", detail)
            elif before.last_fired_at is None or now - before.last_fired_at >= quiet:
                record("firing", detail, reminder=True)
        elif before.firing:
            record("resolved", "; ".join(o.detail for o in group))
    return records


@dataclass
class AlertDelivery:
    """How the run's alerts went out."""

    records: int = 0
    table_rows: int = 0
    topic: str = ""
    topic_error: str | None = None
    webhook_posted: bool = False
    webhook_error: str | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.records:
            return (
                "alerts: none new (an ongoing problem stays quiet until it resolves or the quiet period ends)"
            )
        parts = [f"alerts: {self.records} state changes → xp.alerts table ({self.table_rows} rows)"]
        if self.topic_error:
            parts.append(f"topic {self.topic}: FAILED ({self.topic_error})")
        else:
            parts.append(f"topic {self.topic}")
        if self.webhook_error:
            parts.append(f"webhook: FAILED ({self.webhook_error})")
        elif self.webhook_posted:
            parts.append("webhook: posted")
        return ", ".join(parts)


def produce_alerts(settings: KafkaSettings, records: Sequence[AlertRecord], *, timeout: float) -> str | None:
    """Produce the records to ``xp.alerts`` (key: fingerprint); returns an error text, None if delivered."""
    from xpcore.kafka.clients import make_producer
    from xpcore.kafka.topics import ALERTS

    topic = settings.topic(ALERTS)
    errors: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    try:
        # librdkafka logs every refused connection: the outcome is reported once, below, instead
        overrides = {"message.timeout.ms": max(int(timeout * 1000), 1000), "log_level": 2}
        producer = make_producer(settings, role="quality", **overrides)
        for record in records:
            producer.produce(
                topic,
                key=record.fingerprint.encode("utf-8"),
                value=json.dumps(record.to_json(), sort_keys=True).encode("utf-8"),
                on_delivery=delivered,
            )
        remaining = producer.flush(timeout + 5)
    except Exception as error:  # confluent_kafka.KafkaException, BufferError: report, never crash
        return f"{type(error).__name__}: {error}"
    if remaining or errors:
        failed = remaining or len(errors)
        cause = errors[0] if errors else "no answer"
        return (
            f"{failed} of {len(records)} alert records not delivered to {topic} within {timeout:g}s "
            f"(is Kafka at {settings.kafka_bootstrap} reachable? {cause})"
        )
    return None


def slack_message(records: Sequence[AlertRecord], *, report_path: str | None = None) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: ``text`` (fallback) plus ``blocks`` (mrkdwn sections)."""
    firing = [r for r in records if r.state == "firing"]
    resolved = [r for r in records if r.state == "resolved"]
    headline = f"xpstream data quality: {len(firing)} firing, {len(resolved)} resolved"
    lines = []
    for record in records:
        icon = ":red_circle:" if record.state == "firing" else ":white_check_mark:"
        again = " (still failing)" if record.reminder else ""
        subject = " · ".join(x for x in (record.experiment, record.table) if x) or "all"
        lines.append(f"{icon} *{record.check}* {subject}{again}: {record.detail}")
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": headline}}]
    shown = lines[:MAX_SECTIONS]
    if len(lines) > MAX_SECTIONS:
        shown.append(f"… and {len(lines) - MAX_SECTIONS} more changes (see the report)")
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": line[:2900]}} for line in shown)
    if report_path:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Report: {report_path}"}]})
    return {"text": headline + "\n" + "\n".join(lines), "blocks": blocks}


def post_webhook(url: str, body: Mapping[str, Any], *, timeout: float) -> str | None:
    """POST ``body`` as JSON; returns an error text, None on a 2xx answer."""
    import httpx

    try:
        response = httpx.post(url, json=dict(body), timeout=timeout)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if response.status_code // 100 != 2:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None

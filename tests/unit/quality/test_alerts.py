"""The alert state machine (fire, stay quiet, remind after the quiet period, resolve) and the Slack body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quality.alerts import AlertState, decide_alerts, slack_message
from quality.outcomes import CheckOutcome

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
QUIET = timedelta(hours=4)


def failing(detail: str = "p = 1e-9") -> CheckOutcome:
    return CheckOutcome("srm", False, None, None, detail, experiment="exp")


def passing() -> CheckOutcome:
    return CheckOutcome("srm", True, None, None, "split matches", experiment="exp")


def decide(outcomes: list[CheckOutcome], state: dict[str, AlertState], now: datetime = NOW) -> list[str]:
    return [r.state for r in decide_alerts(outcomes, state, run_id="r", now=now, quiet=QUIET)]


def test_new_problem_fires_then_stays_quiet_then_reminds_then_resolves() -> None:
    assert decide([failing()], {}) == ["firing"]
    open_alert = {"srm|exp|": AlertState(firing=True, last_fired_at=NOW)}
    assert decide([failing()], open_alert, NOW + timedelta(hours=1)) == []
    assert decide([failing()], open_alert, NOW + QUIET) == ["firing"]
    assert decide([passing()], open_alert, NOW + timedelta(minutes=5)) == ["resolved"]
    resolved = {"srm|exp|": AlertState(firing=False, last_fired_at=NOW)}
    assert decide([failing()], resolved, NOW + timedelta(minutes=10)) == ["firing"]
    assert decide([passing()], resolved) == []


def test_outcomes_of_one_fingerprint_alert_once_with_every_failed_detail() -> None:
    a = CheckOutcome("nulls", False, None, None, "exposures.unit_id: 3 null", table="exposures")
    b = CheckOutcome("nulls", False, None, None, "exposures.exposed_at: 1 null", table="exposures")
    c = CheckOutcome("nulls", True, None, None, "fine", table="exposures")
    records = decide_alerts([a, b, c], {}, run_id="r", now=NOW, quiet=QUIET)
    assert len(records) == 1
    assert records[0].fingerprint == "nulls||exposures"
    assert "unit_id" in records[0].detail and "exposed_at" in records[0].detail


def test_reminder_is_marked_and_slack_body_is_compatible() -> None:
    state = {"srm|exp|": AlertState(firing=True, last_fired_at=NOW - QUIET)}
    records = decide_alerts([failing()], state, run_id="r", now=NOW, quiet=QUIET)
    assert records[0].reminder
    body = slack_message(records, report_path="/tmp/report/index.html")
    assert body["text"].startswith("xpstream data quality: 1 firing, 0 resolved")
    assert "*srm* exp (still failing): p = 1e-9" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert body["blocks"][1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": ":red_circle: *srm* exp (still failing): p = 1e-9"},
    }
    assert "/tmp/report/index.html" in body["blocks"][-1]["elements"][0]["text"]

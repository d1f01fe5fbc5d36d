"""The summary page renders failures first, per experiment and per table, escaped (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from quality.outcomes import CheckOutcome
from quality.report import publish_latest, render_summary, run_folder
from quality.window import Window

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_summary_page() -> None:
    outcomes = [
        CheckOutcome("srm", False, {"p_value": 1e-9}, {"p_value": 0.001}, "MISMATCH <b>", experiment="exp"),
        CheckOutcome("freshness", True, {"age_seconds": 5}, None, "fresh enough", table="events"),
        CheckOutcome(
            "freshness", False, None, None, "results has no rows at all", table="results", severity="warning"
        ),
    ]
    html = render_summary(
        outcomes,
        run_id="r1",
        run_at="2026-11-25 12:00:00 UTC",
        window=Window(NOW - timedelta(days=1), NOW),
        location="/tmp/store",
        alerts_text="alerts: 2 state changes",
        table_links={"events": "data-docs/validations/xp/events/x.html"},
    )
    assert "2 checks failed" in html
    assert "MISMATCH &lt;b&gt;" in html and "MISMATCH <b>" not in html
    assert html.index("MISMATCH") < html.index("results has no rows")  # errors before warnings
    assert "p = 1e-09" in html and "data-docs/validations/xp/events/x.html" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")  # self-contained


def test_latest_is_replaced_and_old_runs_pruned(tmp_path: Path) -> None:
    for stamp in ("20261125T100000Z", "20261125T110000Z", "20261125T120000Z"):
        folder = run_folder(tmp_path, stamp, f"{stamp}-id")
        (folder / "index.html").write_text(stamp)
        latest = publish_latest(tmp_path, folder, keep=2)
    assert latest.read_text() == "20261125T120000Z"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261125T110000Z-20261125",
        "20261125T120000Z-20261125",
        "latest",
    ]

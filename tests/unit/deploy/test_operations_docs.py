"""docs/operations.md links the runbooks and the capacity model; each runbook confirms and fixes."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs"
RUNBOOKS = DOCS / "runbooks"
ALERTS = {
    "srm": "srm.md",
    "freshness": "freshness.md",
    "volume": "volume.md",
    "dead_letter_rate": "dead-letter-rate.md",
    "consumer_lag": "consumer-lag.md",
    "xp_service_spool_full": "spool-full.md",
}


def test_operations_links_the_runbooks_and_the_capacity_model() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(([^)#]+)", text))
    assert "capacity.md" in links
    assert "runbooks/README.md" in links
    for page in ALERTS.values():
        assert f"runbooks/{page}" in links, page
    for link in links:
        if not link.startswith("http"):
            assert (DOCS / link).exists(), link


def test_every_alert_has_a_runbook_with_a_query_and_fix_steps() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for alert, page in ALERTS.items():
        assert f"`{alert}`" in index and f"({page})" in index, alert
        text = (RUNBOOKS / page).read_text(encoding="utf-8")
        assert f"`{alert}`" in text.splitlines()[0], page
        assert "## Confirm" in text and "## Fix" in text, page
        assert "```sql" in text, page


def test_the_alert_names_are_the_ones_the_code_raises() -> None:
    root = DOCS.parent
    quality = "".join(p.read_text(encoding="utf-8") for p in (root / "quality").glob("*.py"))
    for check in ("srm", "freshness", "volume", "dead_letter_rate"):
        assert f'"{check}"' in quality, check
    assert '"consumer_lag"' in (root / "dashboards" / "health_page.py").read_text(encoding="utf-8")
    assert '"xp_service_spool_full"' in (root / "assignment" / "service" / "metrics.py").read_text(
        encoding="utf-8"
    )

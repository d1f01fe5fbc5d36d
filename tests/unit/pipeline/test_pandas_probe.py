"""pyarrow's pandas probe answered without pandas (decision 0101): in a fresh interpreter, a batch through
the kernel imports no pandas after the probe, imports it without the probe, and pandas still works after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

_BATCH = """
import json, sys
from datetime import UTC, datetime, timedelta
from pipelines.pandas_probe import probe_without_pandas
probed = probe_without_pandas() if sys.argv[1] == "probe" else None
from pipelines.attribution import AttributionState
from pipelines.kernel import RawRecord, ValidationRules
from pipelines.processor import RegistryView, StreamProcessor
from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec

now = datetime.now(UTC).replace(microsecond=0)
processor = StreamProcessor(
    exposures_topic="x", events_topic="e", rules=ValidationRules(known_variations=None),
    registry=RegistryView(known_variations=None),
    attribution=AttributionState(default_window=timedelta(days=7), hold=timedelta(minutes=5)),
    dedup_retention=timedelta(hours=1), dedup_max_ids=1000, max_record_bytes=100_000,
)
exposure = RecordCodec(Exposure).encode(Exposure(
    exposure_id="x1", unit_id="u1", hash_attribute="id", experiment_key="exp", variation_id=1,
    variation_key="1", source=ExposureSource.LOADGEN, exposed_at=now - timedelta(seconds=5)))
event = RecordCodec(MetricEvent).encode(MetricEvent(
    event_id="e1", unit_id="u1", event_name="purchase", value=2.5, occurred_at=now - timedelta(seconds=1)))
ms = int(now.timestamp() * 1000)
raws = [RawRecord("x", 0, 0, b"u1", exposure, ms), RawRecord("e", 0, 0, b"u1", event, ms),
        RawRecord("e", 0, 1, b"u1", b"{not json", ms)]
output = processor.process(raws, now)
result = {"probed": probed, "pandas_after_batch": "pandas" in sys.modules,
          "attributed": output.attributed.num_rows, "dead_letters": len(output.dead_letters)}
import pandas  # still importable, and pyarrow still converts to it
result["to_pandas_rows"] = len(output.events.to_pandas())
print(json.dumps(result))
"""


def _run(mode: str) -> dict[str, object]:
    done = subprocess.run(  # a fresh interpreter: this one may hold pandas already
        [sys.executable, "-c", _BATCH, mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_batch_after_the_probe_imports_no_pandas_and_pandas_still_works() -> None:
    probed = _run("probe")
    assert probed == {
        "probed": True,
        "pandas_after_batch": False,
        "attributed": 1,
        "dead_letters": 1,
        "to_pandas_rows": 1,
    }


def test_without_the_probe_the_same_batch_imports_pandas() -> None:
    """The reference: what the probe saves (the batch's conversions import pandas on their own)."""
    assert _run("plain")["pandas_after_batch"] is True

"""OpenFeature in Python against xpstream, through GrowthBook's OpenFeature provider.

The OpenFeature SDK (`openfeature-sdk`) resolves flags with GrowthBook's provider
(`growthbook-openfeature-provider`, which wraps the GrowthBook Python SDK): the features payload comes
from the assignment service (`GET /api/features/{client_key}`), each unit is assigned locally, and the
provider's experiment-viewed callback sends the exposure to the service's collector (`POST /v1/events`).
OpenFeature's tracking API (`client.track("purchase", context, TrackingEventDetails(value=…))`) sends a
metric event the same way: this provider adds `track` to GrowthBook's, which has none.

Reads units as JSON lines on stdin (`{"id": "u1", "country": "US", "purchase": 12.5}`; `purchase` is
optional) and prints, per unit, one JSON line with each flag's OpenFeature details:

    echo '{"id": "u1", "country": "US", "purchase": 12.5}' | \\
        XP_SERVICE_URL=http://127.0.0.1:8100 XP_CLIENT_KEY=ck_1 python sample.py

Needs `openfeature-sdk` and `growthbook-openfeature-provider` (with `growthbook`); nothing from xpstream.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from growthbook_openfeature_provider import GrowthBookProvider, GrowthBookProviderOptions
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.track import TrackingEventDetails

SERVICE_URL = os.environ.get("XP_SERVICE_URL", "http://127.0.0.1:8100").rstrip("/")
CLIENT_KEY = os.environ.get("XP_CLIENT_KEY", "")
FLAGS = {"checkout-button-color": "#57606a", "pricing-page-layout": {"order": ["monthly", "annual"]}}
"""Each flag the sample resolves, with the default value the code falls back to."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def send_to_collector(exposures: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """POST /v1/events; raises when the service does not accept every record."""
    body = json.dumps({"exposures": exposures, "events": events}).encode()
    headers = {"Content-Type": "application/json", "X-XP-Key": CLIENT_KEY}
    post = urllib.request.Request(f"{SERVICE_URL}/v1/events", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(post, timeout=10) as answer:
        verdict = json.loads(answer.read())
    if verdict["rejected"]:
        raise RuntimeError(f"the collector refused records: {verdict['errors']}")


def exposure_id(unit_id: str, experiment_key: str, variation_id: int) -> str:
    """The same id for the same unit, experiment and variation: a resent exposure is deduplicated."""
    digest = hashlib.sha256(f"{unit_id}\x1f{experiment_key}\x1f{variation_id}".encode()).hexdigest()
    return f"sdk-{digest[:32]}"


def on_experiment_viewed(experiment: Any, result: Any, user_context: Any = None) -> None:
    """GrowthBook's tracking callback: the exposure, in xpstream's Exposure contract."""
    unit_id = str(result.hashValue)
    exposure = {
        "exposure_id": exposure_id(unit_id, experiment.key, result.variationId),
        "unit_id": unit_id,
        "hash_attribute": result.hashAttribute,
        "experiment_key": experiment.key,
        "variation_id": result.variationId,
        "variation_key": result.key,
        "feature_key": result.featureId,
        "bucket": result.bucket,
        "source": "sdk",
        "exposed_at": now(),
    }
    send_to_collector([exposure], [])


class XpstreamGrowthBookProvider(GrowthBookProvider):
    """GrowthBook's provider, plus OpenFeature's tracking API sending metric events to xpstream."""

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        if evaluation_context is None or not evaluation_context.targeting_key:
            raise ValueError("track needs an evaluation context with a targeting key (the unit)")
        details = tracking_event_details or TrackingEventDetails()
        event = {
            "event_id": str(uuid.uuid4()),
            "unit_id": evaluation_context.targeting_key,
            "event_name": tracking_event_name,
            "value": details.value,
            "properties": {name: str(value) for name, value in details.attributes.items()},
            "occurred_at": now(),
        }
        send_to_collector([], [event])


def main() -> int:
    provider = XpstreamGrowthBookProvider(
        GrowthBookProviderOptions(
            api_host=SERVICE_URL, client_key=CLIENT_KEY, on_experiment_viewed=on_experiment_viewed
        )
    )
    provider.initialize_sync()
    if not provider.initialized:
        print(f"error: could not load features from {SERVICE_URL}", file=sys.stderr)
        return 1
    api.set_provider(provider)
    client = api.get_client("xpstream-sample")
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            unit = json.loads(line)
            context = EvaluationContext(
                targeting_key=unit["id"], attributes={"country": unit.get("country", "")}
            )
            flags = {}
            for key, default in FLAGS.items():
                if isinstance(default, str):
                    details = client.get_string_details(key, default, context)
                else:
                    details = client.get_object_details(key, default, context)
                flags[key] = {
                    "value": details.value,
                    "variant": details.variant,
                    "reason": str(details.reason),
                    "error_code": details.error_code and str(details.error_code),
                }
            if "purchase" in unit:
                client.track("purchase", context, TrackingEventDetails(value=float(unit["purchase"])))
            print(json.dumps({"id": unit["id"], "flags": flags}), flush=True)
    finally:
        api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

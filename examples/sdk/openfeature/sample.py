"""OpenFeature in Python against xpstream, with either of two providers.

- `--provider growthbook` (the default): GrowthBook's OpenFeature provider
  (`growthbook-openfeature-provider`, which wraps the GrowthBook Python SDK) loads the features payload
  from the assignment service (`GET /api/features/{client_key}`) and assigns each unit in this process;
  its experiment-viewed callback sends the exposure to the service's collector (`POST /v1/events`).
- `--provider ofrep`: the OpenFeature Remote Evaluation Protocol provider (`openfeature-provider-ofrep`)
  asks the service for each flag (`POST /ofrep/v1/evaluate/flags/{key}`); the service assigns and
  records the exposure itself, exactly as for `POST /v1/assign` (needs a service that serves OFREP).

With either, OpenFeature's tracking API (`client.track("purchase", context, TrackingEventDetails(value=…))`)
sends a metric event to `POST /v1/events`: the sample adds `track` to both providers, which have none.

Reads units as JSON lines on stdin (`{"id": "u1", "country": "US", "purchase": 12.5}`; `purchase` is
optional) and prints, per unit, one JSON line with each flag's OpenFeature details:

    echo '{"id": "u1", "country": "US", "purchase": 12.5}' | \\
        XP_SERVICE_URL=http://127.0.0.1:8100 XP_CLIENT_KEY=ck_1 python sample.py [--provider ofrep]

Needs `openfeature-sdk` and `growthbook-openfeature-provider` (or `openfeature-provider-ofrep`); nothing
from xpstream.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider import AbstractProvider
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


class CollectorTracking:
    """OpenFeature's tracking API for a provider: a metric event on the service's collector."""

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


def growthbook_provider() -> AbstractProvider:
    """GrowthBook's provider (payload in the process, exposures from its callback), plus tracking."""
    from growthbook_openfeature_provider import GrowthBookProvider, GrowthBookProviderOptions

    class XpstreamGrowthBookProvider(CollectorTracking, GrowthBookProvider):
        pass

    provider = XpstreamGrowthBookProvider(
        GrowthBookProviderOptions(
            api_host=SERVICE_URL, client_key=CLIENT_KEY, on_experiment_viewed=on_experiment_viewed
        )
    )
    provider.initialize_sync()
    if not provider.initialized:
        raise SystemExit(f"error: could not load features from {SERVICE_URL}")
    return provider


def ofrep_provider() -> AbstractProvider:
    """The OFREP provider (the service evaluates and records the exposures), plus tracking."""
    from openfeature.contrib.provider.ofrep import OFREPProvider

    class XpstreamOFREPProvider(CollectorTracking, OFREPProvider):
        pass

    return XpstreamOFREPProvider(
        SERVICE_URL, headers_factory=lambda: {"Authorization": f"Bearer {CLIENT_KEY}"}
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="OpenFeature against xpstream's assignment service.")
    parser.add_argument("--provider", choices=["growthbook", "ofrep"], default="growthbook")
    options = parser.parse_args()
    api.set_provider(growthbook_provider() if options.provider == "growthbook" else ofrep_provider())
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
                    "metadata": dict(details.flag_metadata),
                }
            if "purchase" in unit:
                client.track("purchase", context, TrackingEventDetails(value=float(unit["purchase"])))
            print(json.dumps({"id": unit["id"], "flags": flags}), flush=True)
    finally:
        api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

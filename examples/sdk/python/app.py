"""A Flask app that assigns with the GrowthBook Python SDK and reports to xpstream.

The SDK reads its features from the assignment service (`GET /api/features/{client_key}`), assigns
each request's user locally, and its tracking callback sends one exposure per experiment the user sees
to the service's collector (`POST /v1/events`); a purchase is a metric event sent the same way.

    XP_SERVICE_URL=http://127.0.0.1:8100 XP_CLIENT_KEY=ck_1 python app.py --port 5000
    curl 'http://127.0.0.1:5000/checkout?user=u1&country=US'
    curl -X POST http://127.0.0.1:5000/purchase -H 'Content-Type: application/json' \
        -d '{"user": "u1", "amount": 12.5}'

Needs `flask` and `growthbook` (pip install flask growthbook==4.0.0); nothing from xpstream.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request
from growthbook import GrowthBook

SERVICE_URL = os.environ.get("XP_SERVICE_URL", "http://127.0.0.1:8100").rstrip("/")
CLIENT_KEY = os.environ.get("XP_CLIENT_KEY", "")
FEATURES = ("checkout-button-color", "pricing-page-layout")

app = Flask(__name__)


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


def track(experiment: Any, result: Any, user_context: Any = None) -> None:
    """GrowthBook's tracking callback: the exposure, in xpstream's Exposure contract."""
    unit_id = str(result.hashValue)
    send_to_collector(
        [
            {
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
        ],
        [],
    )


def growthbook_for(attributes: dict[str, Any]) -> GrowthBook:
    """One SDK instance per request; the features payload is cached by the SDK across instances."""
    gb = GrowthBook(
        api_host=SERVICE_URL, client_key=CLIENT_KEY, attributes=attributes, on_experiment_viewed=track
    )
    gb.load_features()
    return gb


@app.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@app.get("/checkout")
def checkout() -> Any:
    user = request.args.get("user", "")
    if not user:
        return jsonify({"error": "user is required"}), 400
    attributes = {"id": user, "country": request.args.get("country", "")}
    gb = growthbook_for(attributes)
    try:
        assigned = {}
        for key in FEATURES:
            result = gb.eval_feature(key)
            experiment = result.experimentResult
            assigned[key] = {
                "value": result.value,
                "source": result.source,
                "in_experiment": bool(experiment and experiment.inExperiment),
                "variation_id": experiment.variationId if experiment and experiment.inExperiment else None,
            }
    finally:
        gb.destroy()
    return jsonify({"user": user, "features": assigned})


@app.post("/purchase")
def purchase() -> Any:
    body = request.get_json(silent=True) or {}
    user, amount = body.get("user"), body.get("amount")
    if not isinstance(user, str) or not user or not isinstance(amount, int | float):
        return jsonify({"error": "a JSON body {user, amount} is required"}), 400
    event = {
        "event_id": str(uuid.uuid4()),
        "unit_id": user,
        "event_name": "purchase",
        "value": amount,
        "occurred_at": now(),
    }
    send_to_collector([], [event])
    return jsonify({"event_id": event["event_id"]}), 202


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    options = parser.parse_args()
    app.run(host=options.host, port=options.port)


if __name__ == "__main__":
    main()

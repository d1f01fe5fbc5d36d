"""Small GrowthBook payloads shared by tests."""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_PAYLOAD"]

DEMO_PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout-button": {
            "defaultValue": "blue",
            "rules": [
                {
                    "key": "checkout-button-color",
                    "variations": ["blue", "green", "orange"],
                    "weights": [0.34, 0.33, 0.33],
                    "coverage": 1.0,
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "meta": [{"key": "control"}, {"key": "green"}, {"key": "orange"}],
                }
            ],
        }
    }
}

"""A small registry for the loadgen tests: a GrowthBook payload and its ExperimentSpecs, built by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from assignment.registry import ExperimentSpec, VariationSpec
from schemas import ExperimentStatus

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout-button": {
            "defaultValue": "blue",
            "rules": [
                {
                    "key": "checkout-color",
                    "variations": ["blue", "green", "orange"],
                    "weights": [0.34, 0.33, 0.33],
                    "coverage": 1.0,
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "meta": [{"key": "control"}, {"key": "green"}, {"key": "orange"}],
                }
            ],
        },
        "search-ranker": {
            "defaultValue": "bm25",
            "rules": [
                {
                    "key": "ranker-test",
                    "variations": ["bm25", "neural"],
                    "weights": [0.5, 0.5],
                    "coverage": 0.8,
                    "hashAttribute": "device_id",
                    "hashVersion": 2,
                    "meta": [{"key": "control"}, {"key": "neural"}],
                }
            ],
        },
    }
}


def _spec(key: str, feature: str, keys: list[str], weights: list[float], **extra: Any) -> ExperimentSpec:
    return ExperimentSpec(
        key=key,
        name=key,
        status=ExperimentStatus.RUNNING,
        feature_key=feature,
        variations=tuple(
            VariationSpec(i, k, k, w) for i, (k, w) in enumerate(zip(keys, weights, strict=True))
        ),
        **extra,
    )


EXPERIMENTS = [
    _spec("checkout-color", "checkout-button", ["control", "green", "orange"], [0.34, 0.33, 0.33]),
    _spec(
        "ranker-test",
        "search-ranker",
        ["control", "neural"],
        [0.5, 0.5],
        coverage=0.8,
        hash_attribute="device_id",
    ),
]


@pytest.fixture
def payload() -> dict[str, Any]:
    return PAYLOAD


@pytest.fixture
def experiments() -> list[ExperimentSpec]:
    return list(EXPERIMENTS)

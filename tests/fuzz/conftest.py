"""The fuzzing suite: generated hostile input against the decoders, the stream kernel and every HTTP route.

Each test states an invariant that must hold for *any* input: decoding raises only a coded ``RecordError``;
every record of a batch is loaded, deduplicated or dead-lettered (never lost, never both); an HTTP route
answers a 2xx/4xx, never a 500 or a dropped connection. A failure is a real bug: hypothesis prints the
smallest input that shows it.

Profiles (``XP_FUZZ_PROFILE``):

- ``ci`` (default): derandomized, so `make test` is repeatable; ``XP_FUZZ_EXAMPLES`` examples per test
  (default 150).
- ``deep``: random seeds and 2,000 examples per test, for a longer hunt: ``XP_FUZZ_PROFILE=deep
  .venv/bin/pytest tests/fuzz``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("XP_FUZZ_EXAMPLES", "150")),
    derandomize=True,
    deadline=None,
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)
settings.register_profile(
    "deep", max_examples=2000, deadline=None, suppress_health_check=_SLOW_OK, print_blob=True
)
settings.load_profile(os.environ.get("XP_FUZZ_PROFILE", "ci"))

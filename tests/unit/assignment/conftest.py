"""Both hashing paths: modules that mark ``pytestmark = pytest.mark.usefixtures("hash_path")`` run
once with the C hashes (skipped when they are not built) and once with the pure-Python ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assignment.hashing import native_hashing_available, use_native_hashing


@pytest.fixture(scope="module", params=["native", "pure"])
def hash_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Hashes (and payloads compiled in the test) use the C module or pure Python."""
    if request.param == "native" and not native_hashing_available():
        pytest.skip("native hashing is not built (python -m assignment.native_build)")
    previous = use_native_hashing(request.param == "native")
    try:
        yield request.param
    finally:
        use_native_hashing(previous)

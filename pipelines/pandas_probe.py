"""pyarrow's one-time pandas probe answered "no pandas", for a stream worker that owns its process.

pyarrow imports pandas the first time it converts a Python sequence (``pa.array``: its pandas shim asks
whether the input is a pandas object; its C++ converter looks up ``pandas.NA``): 0.3–0.8 s on a quiet
machine, 2 s at load 9, of a whole ``xp stream run`` that never hands pandas objects to pyarrow. Both
probes run once per process and remember a failed import, so :func:`probe_without_pandas` runs them
once while ``import pandas`` fails, and removes the block right after: a later ``import pandas`` (and
pyarrow's ``to_pandas``, which imports it when asked) still works. Decision 0101.

Only for a process that is the worker alone (``xp stream run``), not ``xp up``, where other components
may hand pandas objects to pyarrow (with the probe answered "no", ``pa.array`` would read a pandas
Series as a plain sequence).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["probe_without_pandas"]


class _NoPandas:
    """A meta-path finder that fails ``import pandas`` (and its submodules)."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not imported by the stream worker", name=name)
        return None


def probe_without_pandas() -> bool:
    """Run pyarrow's pandas probes with ``import pandas`` failing; True when they ran that way (False:
    pandas or the probes' answers were already there, nothing done)."""
    if "pandas" in sys.modules:
        return False
    import pyarrow as pa

    sys.meta_path.insert(0, _NoPandas)
    try:
        pa.array([], pa.string())  # the shim's probe (is the input a pandas object?)
        pa.array(["", None])  # the converter's (type inference looks up pandas' missing values)
    finally:
        sys.meta_path.remove(_NoPandas)
    return "pandas" not in sys.modules

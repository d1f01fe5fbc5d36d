"""Named exports, as declared in a YAML file (``XP_EXPORT_FILE``), checked at the edge with pydantic.

```yaml
exports:
  - name: checkout-results        # letters, digits, - and _: names the files
    dataset: results              # results | exposures | events | dead_letters | quality
    experiments: [checkout]       # results only; omitted: every experiment of the latest stats run
    format: xlsx                  # csv | json | xlsx | parquet
  - name: raw-exposures
    dataset: exposures
    window: 24h                   # windowed datasets: [until - window, until); m, h or d
    format: parquet
    destination: s3://bucket/exports   # optional; default XP_EXPORT_URL ($XP_HOME/exports)
```

A bad file is one line naming the file, the entry and the field (:class:`~xpcore.errors.ConfigError`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from xpcore.errors import ConfigError

__all__ = ["DATASET_NAMES", "WINDOWED", "ExportSpec", "ExportsFile", "load_exports", "parse_window"]

DATASET_NAMES = ("results", "exposures", "events", "dead_letters", "quality")
WINDOWED = frozenset({"exposures", "events", "dead_letters"})
"""Datasets read over a time window; results and quality are the latest snapshot."""

_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    """``15m``, ``24h``, ``7d`` as a timedelta; ValueError otherwise."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise ValueError(f"window must be a number and m, h or d (e.g. 24h), got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _window(text: str) -> str:
    parse_window(text)
    return text.strip()


ExportName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class ExportSpec(BaseModel):
    """One named export."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: ExportName
    dataset: Literal["results", "exposures", "events", "dead_letters", "quality"]
    format: Literal["csv", "json", "xlsx", "parquet"]
    window: Annotated[str, AfterValidator(_window)] = "24h"
    experiments: list[str] = Field(default_factory=list)
    destination: str | None = Field(default=None, min_length=1)

    @property
    def window_delta(self) -> timedelta:
        return parse_window(self.window)

    @property
    def windowed(self) -> bool:
        return self.dataset in WINDOWED


class ExportsFile(BaseModel):
    """The whole file: a list of exports with distinct names."""

    model_config = ConfigDict(extra="forbid", strict=True)

    exports: list[ExportSpec] = Field(default_factory=list)


def _problem(source: str, error: PydanticValidationError) -> str:
    first = error.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    return f"{source}: {where or 'top level'}: {first['msg']}"


def load_exports(path: Path) -> list[ExportSpec]:
    """The exports declared in ``path`` (ConfigError, one line, for anything wrong)."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"XP_EXPORT_FILE {path}: cannot read it ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    try:
        parsed = ExportsFile.model_validate(document if document is not None else {})
    except PydanticValidationError as error:
        raise ConfigError(_problem(str(path), error)) from None
    seen: set[str] = set()
    for spec in parsed.exports:
        if spec.name in seen:
            raise ConfigError(f"{path}: export {spec.name!r} is declared twice")
        seen.add(spec.name)
        if spec.experiments and spec.dataset != "results":
            raise ConfigError(
                f"{path}: export {spec.name!r}: experiments applies to the results dataset only"
            )
    return parsed.exports

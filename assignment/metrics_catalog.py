"""The metric catalog: what each metric name means, as plain data (pure; no I/O).

Three default metrics apply to every experiment that names none:

=============  ========  ==================================================================
name           type      definition
=============  ========  ==================================================================
conversion     binomial  the unit made at least one ``purchase`` after its first exposure
revenue        mean      sum of ``purchase`` values per unit after its first exposure
pageviews      mean      number of ``pageview`` events per unit after its first exposure
=============  ========  ==================================================================

User-defined metrics are declared under ``metrics:`` in the experiments YAML (see docs/registry.md):
an event name, an aggregation (``count | sum | unique | binary``), an optional value field, an
attribution window (default :data:`DEFAULT_WINDOW_HOURS` hours; the defaults above have none: the
whole experiment), ``higher_is_better``; or a ratio of two other metrics. The registry stores each
experiment's user-defined metrics inside that experiment's metadata (``metric_definitions``), so an
experiment version carries the exact definitions it was analysed with.

::

    from assignment.metrics_catalog import metrics_for, known_event_names

    metrics_for(snapshot.experiments["checkout"])   # [MetricDefinition(...), ...]
    known_event_names(snapshot)                       # frozenset({"purchase", "pageview", ...})
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from xpcore.errors import ValidationError

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_WINDOW_HOURS",
    "Aggregation",
    "MetricDefinition",
    "MetricType",
    "QuantilePer",
    "known_event_names",
    "metric_from_dict",
    "metric_roles",
    "metrics_for",
    "resolve_metrics",
]

DEFAULT_WINDOW_HOURS: Final = 72.0
"""Attribution window of a user-defined metric when its YAML names none: events up to 72 h after the
unit's first exposure count."""


class Aggregation(enum.StrEnum):
    """How a unit's events become one number."""

    COUNT = "count"
    """Number of matching events."""
    SUM = "sum"
    """Sum of the value field."""
    UNIQUE = "unique"
    """Number of distinct values of the value field."""
    BINARY = "binary"
    """1 if the unit has at least one matching event, else 0."""


class MetricType(enum.StrEnum):
    """The statistical shape of a metric (which test analysis uses)."""

    BINOMIAL = "binomial"
    MEAN = "mean"
    RATIO = "ratio"
    QUANTILE = "quantile"
    """A quantile (``quantile: 0.9`` = p90) of the value per unit or per event (decision 0083)."""


class QuantilePer(enum.StrEnum):
    """What a quantile metric's quantile is over."""

    UNIT = "unit"
    """One value per unit: the metric's aggregation over the unit's events (0 without any)."""
    EVENT = "event"
    """Every counted event's value field (the variance is cluster-robust over units)."""


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One metric. ``event_name``/``aggregation`` for event metrics, ``numerator``/``denominator``
    (metric names) for ratio metrics."""

    name: str
    type: MetricType
    event_name: str | None = None
    aggregation: Aggregation | None = None
    value_field: str | None = None
    """``value`` (the event's numeric value) or ``properties.NAME``; None for count/binary."""
    window_hours: float | None = DEFAULT_WINDOW_HOURS
    """Attribution window after the unit's first exposure; None: until the experiment stops."""
    numerator: str | None = None
    denominator: str | None = None
    higher_is_better: bool = True
    description: str = ""
    quantile: float | None = None
    """Quantile metrics: the level ν in (0, 1), e.g. 0.9 for p90; None otherwise."""
    per: QuantilePer | None = None
    """Quantile metrics: ``unit`` or ``event``; None otherwise."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stored in experiment metadata; :func:`metric_from_dict` reads it back). The
        quantile fields appear only on quantile metrics, so other metrics' stored form is unchanged."""
        fields = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in asdict(self).items()}
        if self.type is not MetricType.QUANTILE:
            del fields["quantile"], fields["per"]
        return fields


DEFAULT_METRICS: Final[tuple[MetricDefinition, ...]] = (
    MetricDefinition(
        name="conversion",
        type=MetricType.BINOMIAL,
        event_name="purchase",
        aggregation=Aggregation.BINARY,
        window_hours=None,
        description="Unit made at least one purchase after its first exposure.",
    ),
    MetricDefinition(
        name="revenue",
        type=MetricType.MEAN,
        event_name="purchase",
        aggregation=Aggregation.SUM,
        value_field="value",
        window_hours=None,
        description="Sum of purchase values per unit after its first exposure.",
    ),
    MetricDefinition(
        name="pageviews",
        type=MetricType.MEAN,
        event_name="pageview",
        aggregation=Aggregation.COUNT,
        window_hours=None,
        description="Pageview events per unit after its first exposure.",
    ),
)
"""Used when an experiment names no metric; always resolvable by name."""

_DEFAULTS_BY_NAME: Final = {m.name: m for m in DEFAULT_METRICS}
_TYPE_OF: Final = {
    Aggregation.BINARY: MetricType.BINOMIAL,
    Aggregation.COUNT: MetricType.MEAN,
    Aggregation.SUM: MetricType.MEAN,
    Aggregation.UNIQUE: MetricType.MEAN,
}
_FIELDS: Final = {
    "name",
    "type",
    "event",
    "event_name",
    "aggregation",
    "value_field",
    "window",
    "window_hours",
    "numerator",
    "denominator",
    "higher_is_better",
    "description",
    "quantile",
    "per",
}


def parse_window_hours(value: Any) -> float | None:
    """A window as hours: a number of hours, ``"72h"``, ``"3d"``, ``"90m"``, ``"2w"``; ``none``/null: None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, bool):
        raise ValueError("must be hours (a number) or a duration like 72h, 3d")
    if isinstance(value, int | float):
        hours = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        units = {"m": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}
        try:
            hours = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
        except (ValueError, KeyError):
            raise ValueError(f"{value!r} is not hours or a duration like 72h, 3d, 90m, 2w") from None
    else:
        raise ValueError("must be hours (a number) or a duration like 72h, 3d")
    if not hours > 0:
        raise ValueError("must be > 0")
    return hours


def metric_from_dict(spec: Mapping[str, Any], where: str = "metric") -> MetricDefinition:
    """A user-defined metric from its YAML (or stored) form; ValidationError ``where: field: problem``."""
    if not isinstance(spec, Mapping):
        raise ValidationError(f"{where}: must be a mapping with name and event (or numerator/denominator)")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise ValidationError(f"{where}: {unknown[0]}: unknown field")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{where}: name: required (a non-empty string)")
    where = f"{where} {name!r}"
    higher = spec.get("higher_is_better", True)
    if not isinstance(higher, bool):
        raise ValidationError(f"{where}: higher_is_better: must be true or false")
    description = str(spec.get("description") or "")
    numerator, denominator = spec.get("numerator"), spec.get("denominator")
    if numerator is not None or denominator is not None or spec.get("type") == "ratio":
        for field, value in (("numerator", numerator), ("denominator", denominator)):
            if not isinstance(value, str) or not value:
                raise ValidationError(f"{where}: {field}: a ratio metric needs a metric name here")
        if spec.get("event", spec.get("event_name")) is not None:
            raise ValidationError(f"{where}: event: a ratio metric takes numerator/denominator, not event")
        return MetricDefinition(
            name=name,
            type=MetricType.RATIO,
            numerator=numerator,
            denominator=denominator,
            window_hours=None,
            higher_is_better=higher,
            description=description,
        )
    event = spec.get("event", spec.get("event_name"))
    if not isinstance(event, str) or not event:
        raise ValidationError(f"{where}: event: required (the event name, e.g. purchase)")
    quantile_fields = spec.get("quantile") is not None or spec.get("per") is not None
    if spec.get("type") == MetricType.QUANTILE.value or quantile_fields:
        return _quantile_metric(spec, where, name=name, event=event, higher=higher, description=description)
    try:
        aggregation = Aggregation(spec.get("aggregation", "count"))
    except ValueError:
        raise ValidationError(f"{where}: aggregation: must be one of count, sum, unique, binary") from None
    value_field = spec.get("value_field")
    if value_field is not None and not (
        value_field == "value" or (isinstance(value_field, str) and value_field.startswith("properties."))
    ):
        raise ValidationError(f"{where}: value_field: must be `value` or `properties.NAME`")
    if aggregation is Aggregation.SUM and value_field is None:
        value_field = "value"
    if aggregation is Aggregation.UNIQUE and value_field is None:
        raise ValidationError(f"{where}: value_field: required for aggregation unique")
    try:
        window = parse_window_hours(spec.get("window", spec.get("window_hours", DEFAULT_WINDOW_HOURS)))
    except ValueError as error:
        raise ValidationError(f"{where}: window: {error}") from None
    if "type" in spec and spec["type"] is not None and spec["type"] != _TYPE_OF[aggregation].value:
        raise ValidationError(
            f"{where}: type: {spec['type']!r} does not match aggregation {aggregation.value}"
        )
    return MetricDefinition(
        name=name,
        type=_TYPE_OF[aggregation],
        event_name=event,
        aggregation=aggregation,
        value_field=value_field,
        window_hours=window,
        higher_is_better=higher,
        description=description,
    )


def _quantile_metric(
    spec: Mapping[str, Any], where: str, *, name: str, event: str, higher: bool, description: str
) -> MetricDefinition:
    """``type: quantile``: ``quantile`` (ν), ``per`` (default ``unit``), the value (default: the sum of
    ``value`` per unit; per event: each event's ``value_field``), the window as for any event metric."""
    if spec.get("type") != MetricType.QUANTILE.value:
        raise ValidationError(f"{where}: quantile/per: only for type: quantile")
    level = spec.get("quantile")
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ValidationError(f"{where}: quantile: required, a number between 0 and 1 (0.9 for p90)")
    try:
        per = QuantilePer(spec.get("per") or "unit")
    except ValueError:
        raise ValidationError(f"{where}: per: must be unit or event") from None
    value_field = spec.get("value_field", "value")
    if not (
        value_field == "value" or (isinstance(value_field, str) and value_field.startswith("properties."))
    ):
        raise ValidationError(f"{where}: value_field: must be `value` or `properties.NAME`")
    try:
        aggregation = Aggregation(spec.get("aggregation", "sum"))
    except ValueError:
        raise ValidationError(f"{where}: aggregation: must be one of count, sum, unique, binary") from None
    if per is QuantilePer.EVENT and aggregation is not Aggregation.SUM:
        raise ValidationError(f"{where}: aggregation: a per-event quantile takes each event's value_field")
    try:
        window = parse_window_hours(spec.get("window", spec.get("window_hours", DEFAULT_WINDOW_HOURS)))
    except ValueError as error:
        raise ValidationError(f"{where}: window: {error}") from None
    return MetricDefinition(
        name=name,
        type=MetricType.QUANTILE,
        event_name=event,
        aggregation=aggregation,
        value_field=value_field,
        window_hours=window,
        higher_is_better=higher,
        description=description,
        quantile=float(level),
        per=per,
    )


def resolve_metrics(
    names: Iterable[str], defined: Mapping[str, MetricDefinition], where: str
) -> list[MetricDefinition]:
    """The definitions ``names`` need (ratio parts included, each once, dependencies first);
    ValidationError naming the unknown metric."""
    resolved: dict[str, MetricDefinition] = {}

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in resolved:
            return
        if name in stack:
            raise ValidationError(f"{where}: ratio metric {name!r} refers to itself")
        metric = defined.get(name) or _DEFAULTS_BY_NAME.get(name)
        if metric is None:
            known = ", ".join(sorted({*defined, *_DEFAULTS_BY_NAME}))
            raise ValidationError(f"{where}: unknown metric {name!r} (known: {known})")
        for part in (metric.numerator, metric.denominator):
            if part is not None:
                visit(part, (*stack, name))
                if resolved[part].type is MetricType.QUANTILE:
                    raise ValidationError(f"{where}: ratio metric {name!r}: {part!r} is a quantile metric")
        resolved[name] = metric

    for name in names:
        visit(name, ())
    return list(resolved.values())


def _experiment_definitions(experiment: ExperimentSpec) -> dict[str, MetricDefinition]:
    return {m.name: m for m in experiment.metrics.definitions}


def metric_roles(experiment: ExperimentSpec) -> dict[str, list[MetricDefinition]]:
    """``{"primary": [...], "secondary": [...], "guardrails": [...]}``; the defaults as primary when the
    experiment names no metric. Unknown names are skipped (the registry validated them on apply)."""
    spec = experiment.metrics
    if not (spec.primary or spec.secondary or spec.guardrails):
        return {"primary": list(DEFAULT_METRICS), "secondary": [], "guardrails": []}
    defined = _experiment_definitions(experiment)
    roles: dict[str, list[MetricDefinition]] = {}
    for role, names in (
        ("primary", spec.primary),
        ("secondary", spec.secondary),
        ("guardrails", spec.guardrails),
    ):
        metrics = [defined.get(n) or _DEFAULTS_BY_NAME.get(n) for n in names]
        roles[role] = [m for m in metrics if m is not None]
    return roles


def metrics_for(experiment: ExperimentSpec) -> list[MetricDefinition]:
    """The experiment's metrics (primary, secondary, guardrails, each once), plus the parts of its ratio
    metrics at the end; the defaults when it names none."""
    named = [m for role in metric_roles(experiment).values() for m in role]
    names = list(dict.fromkeys(m.name for m in named))
    defined = {**_DEFAULTS_BY_NAME, **_experiment_definitions(experiment)}
    by_name = {m.name: m for m in resolve_metrics(names, defined, f"experiment {experiment.key!r}")}
    ordered = [by_name[n] for n in names]
    return ordered + [m for n, m in by_name.items() if n not in names]


def known_event_names(source: Any = None) -> frozenset[str]:
    """Event names some metric counts: the defaults' (``purchase``, ``pageview``) plus those of the
    user-defined metrics of every experiment in ``source`` — a :class:`RegistrySnapshot` (anything with
    ``experiments``; its experiments' funnel steps too), or an iterable of :class:`MetricDefinition`; the
    defaults' alone without one."""
    names = {m.event_name for m in DEFAULT_METRICS if m.event_name}
    experiments = getattr(source, "experiments", None)
    if experiments is not None:
        for experiment in experiments.values():
            names.update(m.event_name for m in experiment.metrics.definitions if m.event_name)
        names.update(_funnel_steps(source))
    elif source is not None:
        names.update(m.event_name for m in source if isinstance(m, MetricDefinition) and m.event_name)
    return frozenset(names)


def _funnel_steps(snapshot: Any) -> set[str]:
    """The step event names of every experiment's declared ``funnel:`` (metadata of the stored entry)."""
    definition_of = getattr(snapshot, "experiment_definition", None)
    if definition_of is None:
        return set()
    steps: set[str] = set()
    for key in snapshot.experiments:
        definition = definition_of(key)
        funnel = (getattr(definition, "metadata", None) or {}).get("funnel")
        if isinstance(funnel, Mapping) and isinstance(funnel.get("steps"), list):
            steps.update(step for step in funnel["steps"] if isinstance(step, str) and step)
    return steps

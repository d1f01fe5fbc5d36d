"""The Flink job's validation verdict per record, as Flink SQL (pure: strings, no Flink).

For each input record the job computes one **verdict**: the dead-letter reason code the kernel gives it
(``schemas.DeadLetterReason``), ``ok`` when the kernel keeps it, or ``undecided`` when SQL cannot decide
it exactly. It travels with the record to the loader as the ``xp-verdict`` header; the loader checks every
decided verdict against the kernel's and the kernel stays the authority (it writes the dead letters, with
msgspec's detail text, so ids, tokens and details are the Kafka runner's). docs/decisions/0096.

What SQL decides, in the kernel's order (``schemas.codec`` then ``pipelines.record_rules``):

- ``invalid_json`` for a record without a value or with an empty one; ``too_large`` by its byte length;
- the schema of the contract's fields (:data:`EXPOSURE_FIELDS`, :data:`EVENT_FIELDS`, mirroring
  ``schemas.records``): each field is judged ``o`` (fine), ``m`` (absent or null where msgspec says
  ``missing_field``), ``b`` (wrong JSON type, empty string, number out of range, unknown enum value:
  ``schema_violation``) or ``u`` (SQL cannot be sure: a length over the limit, a float for an int, a
  time that is not RFC 3339 ``…Z``, a map with a non-string value, a metric value beyond the limit…).
  Any ``u`` → ``undecided``; ``b`` with ``m`` → ``undecided`` (msgspec reports the first in document
  order, which SQL does not see); ``b`` alone → ``schema_violation``; ``m`` alone → ``missing_field``;
- for a clean record, the rules in order: the time bounds against the Kafka timestamp (decided only
  beyond the bounds widened by the margin, or within them narrowed by it), the experiment, the variation
  (exposures), the event name (events).

Undecided by design: invalid UTF-8 (Flink decodes it to U+FFFD; any U+FFFD makes the record undecided),
malformed JSON (Flink's parser ignores trailing values, msgspec does not: a document must be exactly one
object for SQL to judge it), ``NaN``/``Infinity``, and every detail text.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.flink.sql_text import double, literal

__all__ = [
    "DECIDED_REASONS",
    "EVENT_FIELDS",
    "EXPOSURE_FIELDS",
    "OK",
    "RFC3339_UTC",
    "TIME_MARGIN_SECONDS",
    "UNDECIDED",
    "FieldRule",
    "VerdictParams",
    "parse_columns",
    "verdict_columns",
    "verdict_expression",
]

OK = "ok"
UNDECIDED = "undecided"
DECIDED_REASONS = frozenset(
    {
        "invalid_json",
        "too_large",
        "schema_violation",
        "missing_field",
        "timestamp_out_of_bounds",
        "unknown_experiment",
        "unknown_variation",
        "unknown_event_name",
    }
)
"""The reason codes the job can give (``DeadLetterReason`` values; a unit test checks the names)."""

TIME_MARGIN_SECONDS = 1
"""The job decides a time verdict only this far from a bound (it parses whole seconds and fractions as
Flink does; the kernel compares whole milliseconds)."""

RFC3339_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
"""The record times the job parses (UTC, 'Z'); any other spelling is left to the kernel."""

_JSON_STRING = r'"(?:[^"\\]++|\\.)*+"'
STRING_MAP = rf"^\{{(?:{_JSON_STRING}:{_JSON_STRING}(?:,{_JSON_STRING}:{_JSON_STRING})*+)?\}}$"
"""A JSON object of strings to strings, as Flink re-serializes it (compact). Possessive quantifiers: Java's
regex engine recurses once per iteration of a loop over an alternation, and overflows its stack on long
values otherwise (a run of ordinary characters is one iteration here)."""


@dataclass(frozen=True)
class FieldRule:
    """One field of a record contract as msgspec checks it (``schemas.records``)."""

    name: str
    kind: str
    """``str``, ``int``, ``float``, ``bool``, ``map``, ``time``, ``enum``, ``metric`` (float, bounded by
    ``XP_MAX_ABS_METRIC_VALUE`` in the codec)."""
    required: bool = False
    nullable: bool = False
    low: float = 0
    high: float = 0
    """Lengths for ``str`` (low ≥ 0, high = max), bounds for ``int`` / ``float``."""
    values: tuple[str, ...] = ()


def _key(name: str, high: int = 256, *, required: bool = True, nullable: bool = False) -> FieldRule:
    return FieldRule(name, "str", required=required, nullable=nullable, low=1, high=high)


_VERSION = FieldRule("schema_version", "int", low=1, high=65535)

EXPOSURE_FIELDS: tuple[FieldRule, ...] = (
    _key("exposure_id", 128),
    _key("unit_id"),
    _key("hash_attribute"),
    _key("experiment_key"),
    FieldRule("variation_id", "int", required=True, low=0, high=65535),
    _key("variation_key"),
    _key("feature_key", required=False, nullable=True),
    FieldRule("bucket", "float", nullable=True, low=0.0, high=1.0),
    FieldRule("overridden", "bool"),
    FieldRule("source", "enum", required=True, values=("sdk", "service", "loadgen")),
    FieldRule("attributes", "map"),
    FieldRule("user_agent", "str", nullable=True, low=0, high=1024),
    FieldRule("exposed_at", "time", required=True),
    FieldRule("sent_at", "time", nullable=True),
    _VERSION,
)
"""``schemas.records.Exposure``."""

EVENT_FIELDS: tuple[FieldRule, ...] = (
    _key("event_id", 128),
    _key("unit_id"),
    _key("event_name"),
    FieldRule("value", "metric", nullable=True),
    FieldRule("properties", "map"),
    FieldRule("occurred_at", "time", required=True),
    FieldRule("sent_at", "time", nullable=True),
    _VERSION,
)
"""``schemas.records.MetricEvent``."""


@dataclass(frozen=True)
class VerdictParams:
    """The bounds the verdict needs (the worker's settings)."""

    max_record_bytes: int
    max_abs_metric_value: float
    max_future_skew_seconds: int
    max_lateness_seconds: int


def _wrapped(name: str) -> str:
    """The field as a one-element JSON array text (``["x"]``, ``[5]``, ``[true]``, ``[{…}]``); NULL when
    the field is absent or null (Flink does not tell those apart)."""
    return f"w_{name}"


def parse_columns(fields: tuple[FieldRule, ...]) -> str:
    """SQL select items over ``s``: every JSON function the verdict needs, once each, as columns."""
    items = [
        once(f"JSON_QUERY(s, '$.{rule.name}' WITH UNCONDITIONAL ARRAY WRAPPER)", f"w_{rule.name}")
        for rule in fields
    ]
    items += [
        once(f"JSON_VALUE(s, '$.{rule.name}')", f"j_{rule.name}") for rule in fields if rule.kind in _TEXT
    ]
    items += [
        once(f"JSON_QUERY(s, '$.{rule.name}')", f"q_{rule.name}") for rule in fields if rule.kind == "map"
    ]
    if any(not rule.required and not rule.nullable for rule in fields):
        items.append(once("JSON_QUERY(s, '$')", "doc"))
    return ",\n    ".join(items)


def once(expression: str, name: str) -> str:
    """``expression AS name``, computed once per record however often the next projection uses it.

    Flink merges consecutive projections and then generates code for every *use* of a column (one
    JSON parse per use, and generated code so long that splitting it takes minutes); it does not merge
    a projection whose column is non-deterministic into one that uses it twice (FLINK-20887). The
    always-true ``RAND() >= 0`` makes the column so, and changes no value."""
    return f"CASE WHEN RAND() >= 0 THEN {expression} END AS {name}"


_TEXT = ("str", "enum", "time")


def _absent(rule: FieldRule) -> str:
    """The state of a field that is absent or null."""
    if rule.required:
        return "'m'"  # absent or null: missing_field either way
    if rule.nullable:
        return "'o'"
    # A default but not nullable: absent is fine, null is missing_field; SQL sees neither apart, so look
    # for `"name":null` in the compact document (it may also be a nested key: then unsure, never wrong).
    pattern = '[{,]"' + rule.name + '":null[,}]'
    return f"CASE WHEN REGEXP(doc, {literal(pattern)}) THEN 'u' ELSE 'o' END"


def _number(rule: FieldRule) -> str:
    text = f"SUBSTRING({_wrapped(rule.name)}, 2, CHAR_LENGTH({_wrapped(rule.name)}) - 2)"
    if rule.kind == "int":
        return (
            f"CASE WHEN REGEXP({text}, '^-?[0-9]{{1,9}}$') THEN "
            f"CASE WHEN CAST({text} AS INT) BETWEEN {int(rule.low)} AND {int(rule.high)} "
            "THEN 'o' ELSE 'b' END "
            "ELSE 'u' END"
        )
    number = f"TRY_CAST({text} AS DOUBLE)"
    if rule.kind == "metric":
        return f"CASE WHEN ABS({number}) <= {double(rule.high)} THEN 'o' ELSE 'u' END"
    return (
        f"CASE WHEN {number} BETWEEN {double(rule.low)} AND {double(rule.high)} THEN 'o' "
        f"WHEN ABS({number}) < 1.0E300 THEN 'b' ELSE 'u' END"
    )


def _present(rule: FieldRule) -> str:
    """The state of a present, non-null field by its JSON type (the wrapped text's second character)."""
    value = f"j_{rule.name}"
    number = "'-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'"
    if rule.kind in _TEXT:
        if rule.kind == "str":
            fine = (
                f"CASE WHEN CHAR_LENGTH({value}) < {int(rule.low)} THEN 'b' "
                f"WHEN CHAR_LENGTH({value}) <= {int(rule.high)} THEN 'o' ELSE 'u' END"
            )
            other = "'b'"
        elif rule.kind == "enum":
            listed = ", ".join(literal(v) for v in rule.values)
            # msgspec's message quotes the value: a value naming a time would be classified bad_timestamp
            fine = (
                f"CASE WHEN {value} IN ({listed}) THEN 'o' "
                f"WHEN REGEXP(LOWER({value}), 'datetime|timestamp|rfc3339') THEN 'u' ELSE 'b' END"
            )
            other = "'b'"
        else:
            fine = f"CASE WHEN {_time_valid(value)} THEN 'o' ELSE 'u' END"
            other = "'u'"  # msgspec names a datetime: bad_timestamp, left to the kernel
        return f"CASE WHEN SUBSTRING({_wrapped(rule.name)}, 2, 1) = '\"' THEN {fine} ELSE {other} END"
    first = f"SUBSTRING({_wrapped(rule.name)}, 2, 1)"
    if rule.kind == "bool":
        return f"CASE WHEN {first} IN ('t', 'f') THEN 'o' ELSE 'b' END"
    if rule.kind == "map":
        obj = f"q_{rule.name}"
        strings = f"REGEXP({obj}, {literal(STRING_MAP)})"
        return f"CASE WHEN {first} <> '{{' THEN 'b' WHEN {strings} THEN 'o' ELSE 'u' END"
    return f"CASE WHEN {first} IN ({number}) THEN {_number(rule)} ELSE 'b' END"


def _time_text(value: str) -> str:
    return f"REPLACE(REPLACE({value}, 'T', ' '), 'Z', '')"


def _time_at(value: str) -> str:
    return f"TRY_CAST({_time_text(value)} AS TIMESTAMP(3))"


def _time_valid(value: str) -> str:
    """RFC 3339 UTC, a real calendar time (Flink rolls 02-30 over: compared back), years 1900..2299."""
    return (
        f"COALESCE(REGEXP({value}, {literal(RFC3339_UTC)}) "
        f"AND DATE_FORMAT({_time_at(value)}, 'yyyy-MM-dd HH:mm:ss') = SUBSTRING({_time_text(value)}, 1, 19) "
        f"AND SUBSTRING({value}, 1, 4) BETWEEN '1900' AND '2299', FALSE)"
    )


def field_state(rule: FieldRule, params: VerdictParams) -> str:
    """SQL: one character, the field's state (``o``, ``m``, ``b``, ``u``)."""
    if rule.kind == "metric":
        rule = FieldRule(rule.name, "metric", nullable=True, high=params.max_abs_metric_value)
    return f"CASE WHEN {_wrapped(rule.name)} IS NULL THEN {_absent(rule)} ELSE {_present(rule)} END"


def _time_verdict(field_name: str, params: VerdictParams) -> str:
    """'in' (within the bounds narrowed by the margin), 'out' (beyond them widened), else 'u'."""
    at = _time_at(f"j_{field_name}")
    reference = "CAST(src_ts AS TIMESTAMP(3))"
    margin = TIME_MARGIN_SECONDS
    skew, lateness = params.max_future_skew_seconds, params.max_lateness_seconds
    return (
        f"CASE WHEN {at} > TIMESTAMPADD(SECOND, {int(skew + margin)}, {reference}) "
        f"OR {at} < TIMESTAMPADD(SECOND, {-int(lateness + margin)}, {reference}) THEN 'out' "
        f"WHEN {at} <= TIMESTAMPADD(SECOND, {int(skew - margin)}, {reference}) "
        f"AND {at} >= TIMESTAMPADD(SECOND, {-int(lateness - margin)}, {reference}) THEN 'in' ELSE 'u' END"
    )


def verdict_columns(fields: tuple[FieldRule, ...], time_field: str, params: VerdictParams) -> str:
    """SQL select items over a row with ``v`` (BYTES), ``s`` (``v`` as STRING), ``b64`` (``v`` in Base64)
    and ``src_ts``: ``st``
    (one state character per field; NULL unless ``s`` is exactly one JSON object of valid text) and
    ``tv`` (the time field against the bounds: ``in``, ``out`` or ``u``) and ``nbytes`` (the value's
    length in bytes: Flink SQL has no length of BYTES, so from its Base64 text ``b64``)."""
    states = " || ".join(field_state(rule, params) for rule in fields)
    # Exactly one JSON object (Flink ignores trailing values), valid UTF-8 (no U+FFFD), no escaped
    # surrogate (Flink takes a lone one, msgspec does not), each field's name at most once (Flink keeps
    # the last of duplicate keys, msgspec checks each; a nested key of the same name: undecided).
    single = " AND ".join(
        f"CHAR_LENGTH(s) - CHAR_LENGTH(REPLACE(s, {literal(_quoted(rule.name))}, '')) "
        f"<= {len(_quoted(rule.name))}"
        for rule in fields
    )
    one_object = (
        "s IS JSON OBJECT AND ('[' || s || ']') IS JSON ARRAY "
        f"AND NOT JSON_EXISTS('[' || s || ']', '$[1]') AND POSITION({literal(REPLACEMENT)} IN s) = 0 "
        f"AND NOT REGEXP(s, {literal(SURROGATE_ESCAPE)}) AND {single}"
    )
    size = "CHAR_LENGTH(b64) / 4 * 3 - (CHAR_LENGTH(b64) - CHAR_LENGTH(TRIM(TRAILING '=' FROM b64)))"
    return ",\n  ".join(
        (
            once(f"CASE WHEN COALESCE({one_object}, FALSE) THEN {states} END", "st"),
            once(_time_verdict(time_field, params), "tv"),
            once(size, "nbytes"),
        )
    )


def _quoted(name: str) -> str:
    return f'"{name}"'


SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"
"""A JSON escape of a UTF-16 surrogate (Java regex: a backslash, ``u``, D8..DF)."""

REPLACEMENT = "\ufffd"
"""What Flink decodes invalid UTF-8 to: a record holding it is left to the kernel."""


def verdict_expression(rules: list[tuple[str, str]], params: VerdictParams) -> str:
    """SQL over a row with ``v``, ``st``, ``tv`` and ``nbytes`` (:func:`verdict_columns`): the verdict.

    ``rules``: (SQL predicate that is TRUE when the record breaks the rule, reason code), in the
    kernel's order after the time bounds."""
    checks = "".join(f"WHEN COALESCE({broken}, FALSE) THEN {literal(reason)} " for broken, reason in rules)
    return f"""CASE
    WHEN v IS NULL OR nbytes = 0 THEN 'invalid_json'
    WHEN nbytes > {int(params.max_record_bytes)} THEN 'too_large'
    WHEN st IS NULL OR POSITION('u' IN st) > 0 THEN 'undecided'
    WHEN POSITION('b' IN st) > 0 AND POSITION('m' IN st) > 0 THEN 'undecided'
    WHEN POSITION('b' IN st) > 0 THEN 'schema_violation'
    WHEN POSITION('m' IN st) > 0 THEN 'missing_field'
    WHEN tv = 'out' THEN 'timestamp_out_of_bounds'
    WHEN tv <> 'in' THEN 'undecided'
    {checks}ELSE 'ok'
  END"""

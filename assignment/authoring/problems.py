"""A pydantic error about an experiments YAML → the one line ``xp experiments apply`` prints (pure).

The line names the file, the experiment and the field, and says what is wrong in words (never
pydantic's own dump)::

    experiments.yaml: experiment 'checkout': variations[1].weight: must be ≥ 0
    experiments.yaml: experiments[2]: key: must be letters, digits, …  (the key itself is invalid)
    experiments.yaml: saved_groups: must map group ids to lists of values

Of several problems, the first is told: the file's top level before its experiments, experiments in
file order, and within one experiment its key, then the fields in the order the models declare them,
the unknown fields of a mapping before its other fields. Problems raised by the models'
own validators (:func:`~assignment.authoring.values.problem`) carry their words; pydantic's built-in
ones (wrong type, out of range, missing) get the words of :data:`_WORDS` for their field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pydantic
from pydantic_core import ErrorDetails

from assignment.analysis_block import ANALYSIS_FIELDS, ANALYSIS_PROBLEMS
from assignment.authoring.values import KEY_PROBLEM, PROBLEM, is_key
from assignment.funnel_block import FUNNEL_FIELDS, FUNNEL_PROBLEMS
from xpcore.errors import ValidationError

__all__ = ["first_problem", "yaml_problem"]

_ANY_INDEX: Final = "#"
_ANY_NAME: Final = "*"
_DICT_KEY: Final = "[key]"
"""pydantic's last ``loc`` element for a problem with a mapping's key (rather than its value)."""

_EXPERIMENT: Final = ("experiments", _ANY_INDEX)
_VARIATION: Final = (*_EXPERIMENT, "variations", _ANY_INDEX)
_NOT_A_STRING: Final = "must be a string"

_WORDS: Final[tuple[tuple[tuple[str, ...], str | None, str, bool], ...]] = (
    # (field pattern, pydantic error type or None for any, words, also for anything inside the field)
    (("metrics",), None, "must be a list of metric definitions", False),
    (("saved_groups",), None, "must map group ids to lists of values", True),
    (("experiments",), None, "must be a non-empty list", False),
    (_EXPERIMENT, None, "must be a mapping with key, variations, …", False),
    ((*_EXPERIMENT, "key"), None, KEY_PROBLEM, False),
    ((*_EXPERIMENT, "status"), None, "must be draft, running or stopped", False),
    ((*_EXPERIMENT, "variations"), None, "needs at least 2 variations", False),
    (_VARIATION, None, "must be a mapping with key, name, weight (and optional value)", False),
    ((*_VARIATION, "key"), None, KEY_PROBLEM, False),
    ((*_VARIATION, "weight"), "greater_than_equal", "must be ≥ 0", False),
    ((*_VARIATION, "weight"), None, "must be a number", False),
    ((*_VARIATION, "name"), None, _NOT_A_STRING, False),
    ((*_EXPERIMENT, "coverage"), None, "must be a number in [0, 1]", False),
    ((*_EXPERIMENT, "hash_attribute"), None, "must be a non-empty attribute name", False),
    ((*_EXPERIMENT, "seed"), None, "must be a non-empty string", False),
    ((*_EXPERIMENT, "condition"), None, "must be a mapping (a GrowthBook condition)", False),
    ((*_EXPERIMENT, "feature"), None, KEY_PROBLEM, False),
    ((*_EXPERIMENT, "name"), None, _NOT_A_STRING, False),
    ((*_EXPERIMENT, "hypothesis"), None, _NOT_A_STRING, False),
    ((*_EXPERIMENT, "owner"), None, _NOT_A_STRING, False),
    ((*_EXPERIMENT, "metrics"), None, "must be a mapping with primary, secondary, guardrails", False),
    (
        (*_EXPERIMENT, "metrics", _ANY_NAME, _DICT_KEY),
        None,
        "unknown role (expected primary, secondary, guardrails)",
        False,
    ),
    ((*_EXPERIMENT, "metrics", _ANY_NAME), None, "must be a list of metric names", True),
    ((*_EXPERIMENT, "analysis"), None, f"must be a mapping with {', '.join(ANALYSIS_FIELDS)}", False),
    *(((*_EXPERIMENT, "analysis", field), None, words, False) for field, words in ANALYSIS_PROBLEMS.items()),
    ((*_EXPERIMENT, "funnel"), None, f"must be a mapping with {', '.join(FUNNEL_FIELDS)}", False),
    ((*_EXPERIMENT, "decision"), None, "must be a mapping with outcome, variation, note", False),
    ((*_EXPERIMENT, "decision", "outcome"), None, "must be ship, rollback or inconclusive", False),
    ((*_EXPERIMENT, "decision", "variation"), None, KEY_PROBLEM, False),
    ((*_EXPERIMENT, "decision", "note"), None, "must be a string of at most 500 characters", False),
    *(((*_EXPERIMENT, "funnel", field), None, words, True) for field, words in FUNNEL_PROBLEMS.items()),
)

_UNKNOWN: Final[dict[tuple[str, ...], str]] = {
    (): "unknown top-level field (expected experiments, metrics, saved_groups)",
    (*_EXPERIMENT, "analysis"): f"unknown field (expected {', '.join(ANALYSIS_FIELDS)})",
    (*_EXPERIMENT, "funnel"): f"unknown field (expected {', '.join(FUNNEL_FIELDS)})",
    (*_EXPERIMENT, "decision"): "unknown field (expected outcome, variation, note)",
}
"""Words for an unknown field, by where it is (elsewhere: ``unknown field``)."""


def _generic(loc: Sequence[str | int]) -> tuple[str, ...]:
    return tuple(_ANY_INDEX if isinstance(part, int) else str(part) for part in loc)


def _matches(pattern: tuple[str, ...], generic: tuple[str, ...]) -> bool:
    return len(pattern) == len(generic) and all(
        p == g or (p == _ANY_NAME and g != _ANY_INDEX) for p, g in zip(pattern, generic, strict=True)
    )


def _words(loc: tuple[str | int, ...], kind: str) -> tuple[str, tuple[str | int, ...]]:
    """The words for a built-in pydantic error at ``loc``, and the location to name."""
    generic = _generic(loc)
    if kind == "extra_forbidden":
        return _UNKNOWN.get(generic[:-1], "unknown field"), loc
    for pattern, wanted, words, inside in _WORDS:
        if wanted is not None and wanted != kind:
            continue
        if _matches(pattern, generic) or (inside and _matches(pattern, generic[: len(pattern)])):
            return words, loc[: len(pattern)]
    return "", loc


def _path(loc: Sequence[str | int]) -> str:
    """``("variations", 1, "weight")`` → ``variations[1].weight``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != _DICT_KEY:
            text += f".{part}" if text else str(part)
    return text


def first_problem(error: pydantic.ValidationError) -> ErrorDetails:
    """The problem to tell: by experiment; in one experiment its key first; an unknown field before the
    other fields of its mapping; otherwise pydantic's order (the models' field order)."""
    errors = error.errors(include_url=False, include_input=False)

    def rank(pair: tuple[int, ErrorDetails]) -> tuple[int, int, int, int, int, int]:
        position, detail = pair
        loc = detail["loc"]
        index = loc[1] if len(loc) > 1 and loc[0] == "experiments" and isinstance(loc[1], int) else -1
        unknown = detail["type"] == "extra_forbidden"
        if unknown:  # where its mapping's first problem is
            parent = loc[:-1]
            position = min(i for i, other in enumerate(errors) if other["loc"][: len(parent)] == parent)
        return index, 0 if loc[2:] == ("key",) else 1, position, 0 if unknown else 1, len(loc), pair[0]

    return min(enumerate(errors), key=rank)[1]


def yaml_problem(
    error: pydantic.ValidationError, document: Mapping[str, Any], source: str
) -> ValidationError:
    """The first problem of ``error`` (about ``document``, read from ``source``) as one line."""
    first = first_problem(error)
    loc = tuple(first["loc"])
    context = first.get("ctx") or {}
    if first["type"] == PROBLEM:
        words, at = str(context["problem"]), str(context.get("at", ""))
    else:
        words, loc = _words(loc, first["type"])
        at = ""
        if not words:  # a rule without words of its own: pydantic's, as one line
            message = first["msg"]
            words = (message[:1].lower() + message[1:]).replace("\n", " ")
    subject = source
    if len(loc) >= 2 and loc[0] == "experiments" and isinstance(loc[1], int):
        experiments = document.get("experiments")
        raw = experiments[loc[1]] if isinstance(experiments, list) else None
        key = raw.get("key") if isinstance(raw, dict) else None
        if is_key(key) and loc[2:] != ("key",):
            subject = f"{source}: experiment {key!r}"
        else:
            subject = f"{source}: experiments[{loc[1]}]"
        loc = loc[2:]
    field = f"{_path(loc)}{at}".lstrip(".")
    return ValidationError(f"{subject}: {field}: {words}" if field else f"{subject}: {words}")

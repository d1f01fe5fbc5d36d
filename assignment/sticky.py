"""Sticky bucketing, GrowthBook's way: a unit keeps the variation it was first assigned.

A *sticky bucket document* belongs to one attribute value of a unit and maps
``experimentKey__bucketVersion`` to the variation's key (its ``meta`` key)::

    {"attributeName": "id", "attributeValue": "u1", "assignments": {"checkout-exp__0": "1"}}

Documents are stored by a :class:`StickyBucketService` under ``attributeName||attributeValue``.
Before evaluating a unit, its documents are loaded into a :class:`StickyBuckets` (one per unit and
evaluation, like the SDKs' ``stickyBucketAssignmentDocs``); evaluating an experiment rule with it
then follows GrowthBook's ``runExperiment``:

- the hash attribute falls back to the rule's ``fallbackAttribute`` (only with sticky bucketing);
- assignments are merged from the hash attribute's document and the fallback attribute's
  (the hash attribute's win); a stored ``key__bucketVersion`` whose key is one of the variations'
  ``meta`` keys assigns that variation without the namespace, filters, condition or prerequisites
  of the experiment (``stickyBucketUsed``); any stored ``key__v`` with ``v < minBucketVersion``
  excludes the unit from the experiment (re-enrollment blocked);
- a unit in the experiment has ``key__bucketVersion → variation key`` saved in the document of
  the attribute actually hashed; a changed document is passed to the service at once.

``disableStickyBucketing`` on a rule turns all of this off for that rule. Nothing here does I/O
besides calling the service given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from assignment.hashing import hash_string, is_hashable

__all__ = [
    "InMemoryStickyBucketService",
    "StickyBucketService",
    "StickyBuckets",
    "doc_key",
    "sticky_assignment_key",
]

StickyDoc = dict[str, Any]


def doc_key(attribute_name: str, attribute_value: str) -> str:
    """Where a document is stored: ``attributeName||attributeValue``."""
    return f"{attribute_name}||{attribute_value}"


def sticky_assignment_key(experiment_key: str, bucket_version: int) -> str:
    """The key of one experiment's assignment in a document: ``experimentKey__bucketVersion``."""
    return f"{experiment_key}__{bucket_version}"


class StickyBucketService(Protocol):
    """Where sticky bucket documents live (GrowthBook's ``StickyBucketService``)."""

    def get_all_assignments(self, attributes: Mapping[str, str]) -> dict[str, StickyDoc]:
        """Documents of these attribute values (name → hashed value), keyed by :func:`doc_key`."""
        ...

    def save_assignments(self, doc: Mapping[str, Any]) -> None:
        """Store one document (replacing the one of the same attribute name and value)."""
        ...


class InMemoryStickyBucketService:
    """Documents in process memory, least recently used evicted beyond ``max_docs``; thread-safe."""

    def __init__(self, max_docs: int = 100_000) -> None:
        if max_docs < 1:
            raise ValueError("max_docs must be at least 1")
        self.max_docs = max_docs
        self._docs: OrderedDict[str, StickyDoc] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._docs)

    def get_assignments(self, attribute_name: str, attribute_value: str) -> StickyDoc | None:
        key = doc_key(attribute_name, attribute_value)
        with self._lock:
            doc = self._docs.get(key)
            if doc is None:
                return None
            self._docs.move_to_end(key)
            return _copy(doc)

    def get_all_assignments(self, attributes: Mapping[str, str]) -> dict[str, StickyDoc]:
        docs: dict[str, StickyDoc] = {}
        for name, value in attributes.items():
            doc = self.get_assignments(name, value)
            if doc is not None:
                docs[doc_key(name, value)] = doc
        return docs

    def save_assignments(self, doc: Mapping[str, Any]) -> None:
        key = doc_key(str(doc["attributeName"]), str(doc["attributeValue"]))
        with self._lock:
            self._docs[key] = _copy(doc)
            self._docs.move_to_end(key)
            while len(self._docs) > self.max_docs:
                self._docs.popitem(last=False)


def _copy(doc: Mapping[str, Any]) -> StickyDoc:
    return {
        "attributeName": doc["attributeName"],
        "attributeValue": doc["attributeValue"],
        "assignments": dict(doc.get("assignments") or {}),
    }


class StickyBuckets:
    """One unit's sticky bucket documents while it is evaluated (pass to ``evaluate``).

    ``docs`` (key → document) starts with the documents loaded for the unit and receives every
    assignment made; ``changed`` holds the keys of the documents changed since. With a
    ``service``, each changed document is saved there as soon as it changes.
    """

    __slots__ = ("changed", "docs", "service")

    def __init__(
        self, docs: Mapping[str, Mapping[str, Any]] | None = None, service: StickyBucketService | None = None
    ) -> None:
        self.docs: dict[str, StickyDoc] = {}
        for doc in (docs or {}).values():
            if _is_doc(doc):
                self.docs[doc_key(str(doc["attributeName"]), str(doc["attributeValue"]))] = _copy(doc)
        self.service = service
        self.changed: set[str] = set()

    @classmethod
    def load(
        cls, service: StickyBucketService, attributes: Mapping[str, Any], attribute_names: Iterable[str]
    ) -> StickyBuckets:
        """The unit's documents for ``attribute_names`` (a payload's sticky attributes) from ``service``."""
        values = {
            name: hash_string(attributes.get(name))
            for name in attribute_names
            if is_hashable(attributes.get(name))
        }
        return cls(service.get_all_assignments(values) if values else {}, service)

    @classmethod
    def from_list(cls, docs: Iterable[Any]) -> StickyBuckets:
        """From documents as a client sends them (invalid entries are ignored)."""
        return cls({str(index): doc for index, doc in enumerate(docs) if _is_doc(doc)})

    def _assignments(self, name: str, value: str) -> Mapping[str, Any]:
        doc = self.docs.get(doc_key(name, value))
        return doc["assignments"] if doc is not None else {}

    def variation(
        self,
        attributes: Mapping[str, Any],
        hash_attribute: str,
        fallback_attribute: str | None,
        experiment_key: str,
        bucket_version: int,
        min_bucket_version: int,
        meta_keys: list[Any],
    ) -> tuple[int, bool]:
        """``(stored variation index or -1, re-enrollment blocked by minBucketVersion)``."""
        merged = dict(self._assignments(hash_attribute, hash_string(attributes.get(hash_attribute))))
        if fallback_attribute:
            fallback = self._assignments(fallback_attribute, hash_string(attributes.get(fallback_attribute)))
            for key, variation_key in fallback.items():
                merged.setdefault(key, variation_key)
        for version in range(min_bucket_version):
            if sticky_assignment_key(experiment_key, version) in merged:
                return -1, True
        variation_key = merged.get(sticky_assignment_key(experiment_key, bucket_version))
        if not variation_key:
            return -1, False
        for index, meta_key in enumerate(meta_keys):
            if meta_key == variation_key:
                return index, False
        return -1, False

    def save(
        self, attribute_name: str, attribute_value: str, assignment_key: str, variation_key: str
    ) -> None:
        """Record ``assignment_key → variation_key`` in the document of this attribute value."""
        key = doc_key(attribute_name, attribute_value)
        existing = self.docs.get(key)
        assignments = dict(existing["assignments"]) if existing is not None else {}
        if existing is not None and assignments.get(assignment_key) == variation_key:
            return
        assignments[assignment_key] = variation_key
        doc = {"attributeName": attribute_name, "attributeValue": attribute_value, "assignments": assignments}
        self.docs[key] = doc
        self.changed.add(key)
        if self.service is not None:
            self.service.save_assignments(doc)


def _is_doc(doc: Any) -> bool:
    return (
        isinstance(doc, Mapping)
        and isinstance(doc.get("attributeName"), str)
        and isinstance(doc.get("attributeValue"), str)
        and isinstance(doc.get("assignments", {}), Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in doc.get("assignments", {}).items())
    )

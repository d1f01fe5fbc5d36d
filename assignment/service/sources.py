"""Where the served payload comes from, compiled once per version and swapped atomically.

:class:`ServingState` is everything a request reads (compiled payload, the raw payload for the SDK
endpoint, the registry snapshot for overrides), immutable, and published by assigning one reference:
a request reads ``source.current()`` once and uses that state throughout, so it never sees half of a
change. Compilation happens outside any lock; the lock only serialises concurrent recompiles.

- :class:`StaticPayloadSource`: a GrowthBook payload file (or dict); never changes.
- :class:`RegistryPayloadSource`: follows ``xp.registry`` through
  :class:`assignment.registry_topic.RegistryFollower`; ``current()`` compares the follower's snapshot
  with the compiled one and recompiles when it moved, so no read is stale once the follower has seen
  a change (the follower's ``on_change`` hook recompiles eagerly, off the request path). The payload
  is the snapshot's *at the time of compiling*: experiments outside their start/stop schedule are
  left out, and the state is valid until the next schedule boundary (``valid_until``), when
  ``current()`` recompiles it, so an experiment starts and stops on time without a registry change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from assignment.compiled import CompiledPayload
from assignment.registry import RegistrySnapshot
from schemas import Override
from xpcore.errors import TransientError

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = ["PayloadSource", "RegistryPayloadSource", "ServingState", "SnapshotLike", "StaticPayloadSource"]

logger = logging.getLogger(__name__)


class SnapshotLike(Protocol):
    """What the service reads from a registry snapshot (:class:`assignment.registry.RegistrySnapshot`)."""

    @property
    def overrides(self) -> Mapping[tuple[str, str], Override]: ...

    def payload(self) -> dict[str, Any]: ...

    def override_for(self, experiment_key: str, unit_id: str, at: datetime) -> Override | None: ...


def experiment_hash_attributes(payload: Mapping[str, Any]) -> dict[str, str]:
    """Experiment key → its hash attribute, from the payload's experiment rules."""
    result: dict[str, str] = {}
    for feature_key, feature in (payload.get("features") or {}).items():
        for rule in feature.get("rules") or []:
            if "variations" in rule:
                key = str(rule.get("key") or feature_key)
                result.setdefault(key, str(rule.get("hashAttribute") or "id"))
    return result


def experiment_variations(payload: Mapping[str, Any]) -> dict[str, int]:
    """Experiment key → number of variations (to reject overrides to a variation that does not exist)."""
    result: dict[str, int] = {}
    for feature_key, feature in (payload.get("features") or {}).items():
        for rule in feature.get("rules") or []:
            if "variations" in rule:
                result.setdefault(str(rule.get("key") or feature_key), len(rule["variations"]))
    return result


@dataclass(frozen=True)
class ServingState:
    """One compiled version of what the service serves. Immutable; shared by concurrent requests."""

    version: int
    payload: dict[str, Any]
    compiled: CompiledPayload
    snapshot: SnapshotLike | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    hash_attributes: Mapping[str, str] = field(default_factory=dict)
    """experiment key → hash attribute"""
    variation_counts: Mapping[str, int] = field(default_factory=dict)
    override_units: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """unit id → experiment keys with an override for it (expiry checked per request)"""
    valid_until: datetime | None = None
    """the next start/stop schedule boundary, when this payload stops being current (None: never)"""

    @classmethod
    def build(
        cls,
        version: int,
        payload: dict[str, Any],
        snapshot: SnapshotLike | None = None,
        valid_until: datetime | None = None,
    ) -> ServingState:
        """Compile ``payload`` (raises ValidationError) and index the snapshot's overrides."""
        compiled = CompiledPayload(payload)
        override_units: dict[str, list[str]] = {}
        if snapshot is not None:
            for experiment_key, unit_id in snapshot.overrides:
                override_units.setdefault(unit_id, []).append(experiment_key)
        return cls(
            version=version,
            payload=payload,
            compiled=compiled,
            snapshot=snapshot,
            hash_attributes=experiment_hash_attributes(payload),
            variation_counts=experiment_variations(payload),
            override_units={unit: tuple(keys) for unit, keys in override_units.items()},
            valid_until=valid_until,
        )

    def sdk_payload(self) -> dict[str, Any]:
        """GrowthBook's SDK endpoint response: ``status``, ``features``, ``savedGroups``, ``dateUpdated``."""
        return {
            "status": 200,
            "features": self.payload.get("features") or {},
            "savedGroups": self.payload.get("savedGroups") or {},
            "dateUpdated": self.loaded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


class PayloadSource(Protocol):
    """Something that yields the current :class:`ServingState`."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def current(self) -> ServingState: ...

    def add_listener(self, listener: Callable[[ServingState], None]) -> None:
        """Call ``listener(state)`` after every new version (from the thread that compiled it)."""
        ...

    @property
    def follows_registry(self) -> bool: ...


class StaticPayloadSource:
    """A fixed payload (from a GrowthBook payload file or a dict), optionally with a fixed snapshot."""

    name = "static"
    follows_registry = False

    def __init__(self, payload: dict[str, Any], *, snapshot: SnapshotLike | None = None) -> None:
        self._state = ServingState.build(1, payload, snapshot)

    @classmethod
    def from_file(cls, path: Path) -> StaticPayloadSource:
        """Load and validate a GrowthBook payload file (ValidationError naming the file)."""
        from assignment.payload_file import read_payload_file

        return cls(read_payload_file(path))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def current(self) -> ServingState:
        return self._state

    def add_listener(self, listener: Callable[[ServingState], None]) -> None:
        return None  # a static payload never changes


class RegistryPayloadSource:
    """The payload of the registry topic, recompiled whenever the follower's snapshot changes."""

    name = "registry"
    follows_registry = True

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        follower: Any = None,
        start_timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if follower is None:
            if settings is None:
                raise ValueError("pass settings or a follower")
            from assignment.registry_topic import RegistryFollower

            follower = RegistryFollower(settings, start_timeout=start_timeout)
        self._follower = follower
        self._start_timeout = start_timeout
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._state: ServingState | None = None
        self._version = 0
        self.reloads = 0
        self.reload_errors = 0
        self._listeners: list[Callable[[ServingState], None]] = []
        if hasattr(follower, "on_change"):
            previous = follower.on_change

            def on_change(*args: Any, **kwargs: Any) -> None:
                if callable(previous):
                    previous(*args, **kwargs)
                self.refresh()

            follower.on_change = on_change

    def start(self) -> None:
        """Start following; wait up to ``start_timeout`` for the registry to be read to its end
        (never serve the empty registry of a follower that has not caught up)."""
        deadline = time.monotonic() + self._start_timeout
        self._follower.start()
        while self._follower.snapshot is None or not getattr(self._follower, "loaded", True):
            if time.monotonic() > deadline:
                raise TransientError(
                    f"the registry topic was not read within {self._start_timeout:g}s "
                    "(is Kafka up? XP_SERVICE_REGISTRY_TIMEOUT)"
                )
            time.sleep(0.05)
        self.refresh()

    def stop(self) -> None:
        self._follower.stop()

    def add_listener(self, listener: Callable[[ServingState], None]) -> None:
        """``listener(state)`` runs after each recompile that produced a new version (server-sent
        events to SDKs, :mod:`assignment.service.streams`); it must not block."""
        self._listeners.append(listener)

    def current(self) -> ServingState:
        state = self._state
        if (
            state is None
            or state.snapshot is not self._follower.snapshot
            or (state.valid_until is not None and self._clock() >= state.valid_until)
        ):
            return self.refresh()
        return state

    def refresh(self) -> ServingState:
        """Compile the follower's snapshot if it is not the one served or a schedule boundary has
        passed since it was compiled (idempotent, thread-safe)."""
        with self._lock:
            snapshot = self._follower.snapshot
            state = self._state
            now = self._clock()
            if (
                state is not None
                and state.snapshot is snapshot
                and (state.valid_until is None or now < state.valid_until)
            ):
                return state
            if snapshot is None:
                snapshot = RegistrySnapshot()
            next_boundary = getattr(snapshot, "next_boundary", None)
            valid_until = next_boundary(now) if next_boundary is not None else None
            began = time.perf_counter()
            try:
                payload = snapshot.payload(at=now) if next_boundary is not None else snapshot.payload()
                new_state = ServingState.build(self._version + 1, payload, snapshot, valid_until)
            except Exception:
                self.reload_errors += 1
                if state is None:
                    raise
                logger.exception("registry change does not compile; keeping version %d", state.version)
                # Serve the last good version, but remember this snapshot so we do not retry per request.
                new_state = ServingState(
                    version=state.version,
                    payload=state.payload,
                    compiled=state.compiled,
                    snapshot=snapshot,
                    loaded_at=state.loaded_at,
                    hash_attributes=state.hash_attributes,
                    variation_counts=state.variation_counts,
                    override_units=state.override_units,
                    valid_until=valid_until,
                )
            else:
                self._version = new_state.version
                self.reloads += 1
                logger.info(
                    "payload reloaded version=%d features=%d seconds=%.3f",
                    new_state.version,
                    len(new_state.compiled.features),
                    time.perf_counter() - began,
                )
            self._state = new_state
        if state is None or new_state.version != state.version:
            for listener in list(self._listeners):
                try:
                    listener(new_state)
                except Exception:  # a listener never breaks serving
                    logger.exception("a payload listener failed")
        return new_state

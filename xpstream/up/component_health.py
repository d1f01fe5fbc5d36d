"""What each component of `xp up` reports, and the ``GET /healthz`` answer built from it (pure)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["ComponentState", "Health", "Status"]

Status = Literal["starting", "ok", "failing", "stopping", "disabled"]


@dataclass
class ComponentState:
    status: Status = "starting"
    url: str | None = None
    detail: str = ""
    since: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.status in ("ok", "disabled"),
            "url": self.url,
            "detail": self.detail,
            "since": self.since,
            **self.extra,
        }


class Health:
    """Thread-safe component states; :meth:`report` is the /healthz body and status code."""

    def __init__(self, *, pid: int | None = None) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, ComponentState] = {}
        self.pid = os.getpid() if pid is None else pid
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")

    def set(
        self, name: str, status: Status, detail: str = "", *, url: str | None = None, **extra: Any
    ) -> None:
        with self._lock:
            old = self._states.get(name)
            keep_url = url if url is not None else (old.url if old else None)
            if old is not None and old.status == status:
                old.detail, old.url = detail, keep_url
                old.extra.update(extra)
                return
            self._states[name] = ComponentState(status, keep_url, detail, extra=dict(extra))

    def status(self, name: str) -> Status | None:
        with self._lock:
            state = self._states.get(name)
            return state.status if state else None

    def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 200 when every component is ok or disabled, else 503. The body names the
        process (``pid``, ``started_at``) so an operator can tell which `xp up` answered."""
        with self._lock:
            components = {name: state.as_dict() for name, state in self._states.items()}
        healthy = all(c["ok"] for c in components.values())
        body = {
            "status": "ok" if healthy else "failing",
            "pid": self.pid,
            "started_at": self.started_at,
            "components": components,
        }
        return (200 if healthy else 503), body

"""The assignment HTTP service (`xp assign serve`): assignments, the GrowthBook SDK payload, the event
collector, and exposures to Kafka with a local spool.

Modules:

- :mod:`assignment.service.app`: the Starlette application (:func:`build_app`): routes, request
  metrics, lifespan
- :mod:`assignment.service.handlers`: the endpoints, one method per route of :class:`Handlers`
- :mod:`assignment.service.context`: :class:`Service`, what the endpoints share (source, sink, keys,
  limits, metrics), its auth checks and exposure recording
- :mod:`assignment.service.responses`: JSON and error responses
- :mod:`assignment.service.browser`: CORS and the JSON-only rule for browser requests
- :mod:`assignment.service.fast_assign`: the hot ``POST /v1/assign`` straight on ASGI
- :mod:`assignment.service.models`: pydantic bodies of the HTTP API
- :mod:`assignment.service.openapi`: the OpenAPI document served at ``/openapi.json``
- :mod:`assignment.service.auth`: client/admin keys and the bind rule (pure)
- :mod:`assignment.service.sources`: :class:`PayloadSource` (static file, registry follower) and the
  compiled :class:`ServingState` swapped atomically on change
- :mod:`assignment.service.exposures`: building exposures, the dedup window, the Kafka sink
- :mod:`assignment.service.spool`: the append-only spool file and its replay cursor (pure file IO)

See docs/service.md.
"""

from __future__ import annotations

from assignment.service.auth import AccessLevel, KeyRing, check_bind
from assignment.service.exposures import DedupWindow, KafkaSink, RecordSink, build_exposure, exposure_id
from assignment.service.sources import PayloadSource, RegistryPayloadSource, ServingState, StaticPayloadSource
from assignment.service.spool import Spool, SpoolEntry

__all__ = [
    "AccessLevel",
    "DedupWindow",
    "KafkaSink",
    "KeyRing",
    "PayloadSource",
    "RecordSink",
    "RegistryPayloadSource",
    "ServingState",
    "Spool",
    "SpoolEntry",
    "StaticPayloadSource",
    "build_exposure",
    "check_bind",
    "exposure_id",
]

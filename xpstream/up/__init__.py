"""`xp up`: every long-running part of xpstream in one process for a single machine.

- :mod:`.settings`: ``XP_UP_*`` (plus the stream, service and scheduler settings it builds on).
- :mod:`.health`: what each component reports; ``GET /healthz`` renders it.
- :mod:`.warehouse_api`: the embedded store served to other processes (decision 0003 step 3).
- :mod:`.admin`: the up process's own HTTP app (health + warehouse API, token check off loopback).
- :mod:`.components`: the stream worker thread (supervised), uvicorn servers.
- :mod:`.runner`: start everything, wait for a signal, stop everything in order.
"""

from xpstream.up.settings import UpSettings

__all__ = ["UpSettings"]

"""Background merges of the embedded store held back while the worker is behind, within a parts bound.

Each insert makes a new part per table and partition; ClickHouse merges parts in the background. On a
backlog the worker inserts a batch every few hundred ms and chDB's merge threads re-read, re-sort and
re-compress those parts as they come: 5.2 s of CPU in a 2.2 M-record catch-up on 2 cores, taken from the
worker's own thread and the broker. What is merged while the backlog lasts is merged again as parts grow,
so the work is better done once, after.

:class:`PacedMerges` runs ``SYSTEM STOP MERGES`` when a full batch says the worker is behind, and
``SYSTEM START MERGES`` when it keeps up again (a batch that is not full, an idle poll), when it stops, or
when a count finds ``max_parts`` active parts in one partition of a table (default 300, well under
ClickHouse's ``parts_to_delay_insert`` = 1000: inserts are never slowed or refused for it; merges then run
until a later count finds fewer). No answer depends on merges: each row is loaded once (insert
deduplication tokens, not merges, keep a retried batch out), aggregate tables are combined at read time
(sql/migrations/0003), and a stopped merge leaves parts as they are. Only the embedded store of a worker
that owns the process and the store (``xp stream run``) is paced: a ClickHouse server, a store served by
``xp up`` to extra workers, and ``xp up`` itself (the dashboard reads the same store) keep merging
(docs/decisions/0111-merges-held-back-on-a-backlog.md).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xpcore.warehouse import Warehouse

__all__ = ["MAX_PARTS_WHILE_HELD", "PacedMerges"]

logger = logging.getLogger(__name__)

MAX_PARTS_WHILE_HELD = 300
"""Merges resume once one partition of a table holds this many active parts."""

CHECK_EVERY_BATCHES = 4
"""While the worker is behind, the parts are counted on the first batch and every this many after (a
query of a few ms on the read-only connection)."""

_MOST_PARTS = """
SELECT max(parts) AS parts FROM (
    SELECT count() AS parts FROM system.parts WHERE active GROUP BY database, table, partition_id
)
"""


class PacedMerges:
    """Holds the embedded store's merges back while the worker is behind (see the module's text)."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        enabled: bool = True,
        max_parts: int = MAX_PARTS_WHILE_HELD,
        check_every: int = CHECK_EVERY_BATCHES,
    ) -> None:
        if max_parts < 1 or check_every < 1:
            raise ValueError("max_parts and check_every must be positive")
        from xpcore.warehouse.chdb import ChdbWarehouse

        self.warehouse = warehouse
        # This process's own embedded store only: not a server, not a store served by `xp up` (whose
        # adapter reports kind "chdb" too).
        self.enabled = enabled and isinstance(warehouse, ChdbWarehouse)
        self.max_parts = max_parts
        self.check_every = check_every
        self.held = False
        self.holds = 0
        """How many times merges were held back."""
        self._batches = 0

    def after_batch(self, *, backlogged: bool) -> None:
        """At a batch boundary: hold merges back while ``backlogged`` (the batch was full) and the parts
        stay under the bound; resume them otherwise. Never raises: if the store refuses a statement or the
        count, pacing is off for the rest of the run (merges resumed if they can be) and the worker goes on;
        a store that is really broken fails the worker's next insert with its own error."""
        if not self.enabled:
            return
        try:
            self._pace(backlogged)
        except Exception as error:
            logger.warning("merge pacing off for this run: %s", error)
            self.enabled = False
            self.stop()

    def _pace(self, backlogged: bool) -> None:
        if not backlogged:
            self._batches = 0
            self._resume()
            return
        self._batches += 1
        if (self._batches - 1) % self.check_every:  # parts counted on the first and every check_every-th
            return
        if self._most_parts() >= self.max_parts:
            if self.held:
                logger.info("merges resumed: a partition holds %d+ parts", self.max_parts)
            self._resume()
        elif not self.held:
            self.warehouse.command("SYSTEM STOP MERGES")
            self.held = True
            self.holds += 1
            logger.info("merges held back while the worker is behind")

    def when_idle(self) -> None:
        """No records arrived: the worker keeps up, merges resume (never raises, as :meth:`after_batch`)."""
        self.after_batch(backlogged=False)

    def stop(self) -> None:
        """Resume merges if held (the end of a run; never raises: a failing store is reported by the
        caller's own error)."""
        if self.held:
            try:
                self._resume()
            except Exception as error:  # the store failed: nothing to resume on it
                logger.warning("merges could not be resumed: %s", error)
                self.held = False

    def _resume(self) -> None:
        if self.held:
            self.warehouse.command("SYSTEM START MERGES")
            self.held = False

    def _most_parts(self) -> int:
        # The read-only connection: it does not wait for an insert running on the write connection.
        rows = self.warehouse.query_arrow(_MOST_PARTS, read_only=True).to_pylist()
        return int(rows[0]["parts"] or 0) if rows else 0

"""Settings of the stream worker (`xp stream run`, ``XP_STREAM_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from xpcore.config.base import ENV, CoreSettings

__all__ = ["StreamSettings"]


class StreamSettings(CoreSettings):
    """The stream worker (`xp stream run`): batching, validation bounds, dedup and attribution state."""

    model_config = ENV

    stream_group_id: str = Field(
        default="xp-stream", description="Kafka consumer group of the stream workers (they share partitions)."
    )
    stream_session_timeout_seconds: float = Field(
        default=10.0,
        ge=6,
        description=(
            "Kafka group session timeout: how soon the partitions of a killed worker move to another "
            "(or to its restart)."
        ),
    )
    stream_batch_size: int = Field(
        default=50_000,
        ge=1,
        description=(
            "Most Kafka records one worker processes and loads as one batch (a batch holds fewer when the "
            "records come slower than this per XP_STREAM_BATCH_WAIT_SECONDS)."
        ),
    )
    stream_batch_wait_seconds: float = Field(
        default=0.5, gt=0, description="Longest wait for a batch to fill before processing what arrived."
    )
    stream_max_future_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        description="A record timestamped more than this after its Kafka timestamp is dead-lettered.",
    )
    stream_max_lateness_seconds: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="A record timestamped more than this before its Kafka timestamp is dead-lettered.",
    )
    stream_repair_settle_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "With other writers on the warehouse (routed through `xp up`, a ClickHouse server), how long a "
            "starting worker waits for their inserts in flight before its view repair (only when rows were "
            "loaded lately), so it never counts one of them twice."
        ),
    )
    stream_dedup_retention_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "How long a record id is remembered for deduplication (rebuilt from the warehouse on start); "
            "older re-sends are caught only by the tables' ReplacingMergeTree at merge time."
        ),
    )
    stream_dedup_max_ids: int = Field(
        default=5_000_000,
        ge=1000,
        description="Most record ids the deduplication state keeps (oldest go first).",
    )
    stream_attribution_window_seconds: float = Field(
        default=14 * 86400.0,
        gt=0,
        description="Default attribution window: events up to this long after a unit's first exposure count.",
    )
    stream_hold_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "How long an event stays attributable to exposures that arrive after it (processing time); "
            "also the window of recent events reloaded from the warehouse on start."
        ),
    )
    stream_max_held_events: int = Field(
        default=1_000_000, ge=1, description="Most events held for late exposures (oldest released first)."
    )
    stream_exposures_first_lag: int = Field(
        default=10_000,
        ge=0,
        description=(
            "On a backlog, an events partition is paused while the exposures partition of the same number "
            "has more records than this left to read, so that events are not read (and held, and released "
            "by XP_STREAM_MAX_HELD_EVENTS) before their units' exposures (decision 0107). 0: off."
        ),
    )
    stream_exposures_first_max_pause_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest an events partition stays paused for its exposures (then it is read anyway).",
    )
    stream_event_names: list[str] = Field(
        default=["pageview", "purchase"],
        description="Known metric event names when the metric catalog is unavailable (JSON list).",
    )
    stream_registry_file: Path | None = Field(
        default=None,
        description=(
            "A JSON registry snapshot ({experiments: {key: {variations: [{id, key, name}]}}}) to validate "
            "against instead of following xp.registry (offline runs, tests)."
        ),
    )
    stream_registry_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds to wait for xp.registry to be read before starting (then: exit 1, never guess).",
    )
    stream_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the worker's Prometheus /metrics endpoint (unset: no endpoint).",
    )
    stream_insert_retry_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest back-off between retries of a failed (transient) insert."
    )
    stream_batch_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description=(
            "Byte budget of one batch (Kafka values after decompression): the worker stops filling a batch "
            "once it holds this much, so a flood of large records cannot grow its memory without bound."
        ),
    )
    stream_overlap_load: bool = Field(
        default=True,
        description=(
            "Load a batch into the warehouse in a background thread while the next batch is consumed and "
            "processed (offsets are still committed only after the load; decision 0101). chDB releases the "
            "GIL while it inserts; false: load each batch before consuming the next."
        ),
    )

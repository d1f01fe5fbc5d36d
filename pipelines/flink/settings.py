"""Settings of the Flink runner (`xp stream run --runner flink`, ``XP_FLINK_*``) on top of the stream's."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from xpcore.config.base import ENV
from xpcore.config.stream import StreamSettings

__all__ = ["FlinkSettings"]

REPO = Path(__file__).resolve().parents[2]


class FlinkSettings(StreamSettings):
    """The Flink job (its own Python, ``.venv-flink``) and the loader of what it hands off."""

    model_config = ENV

    flink_python: Path | None = Field(
        default=None,
        description=(
            "The Python with PyFlink that runs the job. Unset: the checkout's .venv-flink/bin/python "
            "(`make flink` builds it)."
        ),
    )
    flink_jars_dir: Path | None = Field(
        default=None,
        description=(
            "The job's connector jars. Unset: the checkout's deploy/flink/lib (`make flink` resolves them "
            "with Maven)."
        ),
    )
    flink_parallelism: int = Field(default=1, ge=1, le=64, description="The job's parallelism.")
    flink_checkpoint_interval_seconds: float = Field(
        default=5.0,
        ge=0.5,
        description=(
            "How often the job checkpoints; a checkpoint commits the hand-off transaction, so records "
            "reach the loader at most about this late."
        ),
    )
    flink_checkpoint_dir: str | None = Field(
        default=None,
        description=(
            "Where checkpoints go (a path, or s3://… on a cluster with Flink's S3 plugin). "
            "Unset: $XP_HOME/flink/checkpoints. A restart resumes from the newest one found there."
        ),
    )

    flink_local_job: bool = Field(
        default=True,
        description=(
            "Run the Flink job here, on Flink's local mini-cluster, beside the loader. false: the job runs "
            "on a Flink cluster (deploy/flink/) and `xp stream run --runner flink` is the loader alone."
        ),
    )

    flink_jvm_attribution: bool = Field(
        default=True,
        description=(
            "The job attributes events to exposures on the JVM (a Java process table function) and hands "
            "its rows off on xp.flink.attributions (XP_FLINK_ATTRIBUTION says what the loader does with "
            "them). false: the kernel alone."
        ),
    )

    flink_attribution: Literal["trust", "check"] = Field(
        default="trust",
        description=(
            "With the JVM attribution on: `trust` loads the job's rows into xp.attributed_events and the "
            "kernel attributes only the events the job did not judge ok (decision 0105: which rows can "
            "differ from --runner kafka); `check` loads the kernel's rows and only counts the job's "
            "against them (decision 0102)."
        ),
    )

    flink_max_held_per_unit: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description=(
            "The JVM attribution holds at most this many events per unit (for late exposures); holding "
            "one more releases the unit's oldest. The overload rule in trust mode (decision 0105): the "
            "kernel's XP_STREAM_MAX_HELD_EVENTS is global and does not apply to the job's rows."
        ),
    )

    @property
    def python(self) -> Path:
        return self.flink_python or REPO / ".venv-flink" / "bin" / "python"

    @property
    def jars_dir(self) -> Path:
        return self.flink_jars_dir or REPO / "deploy" / "flink" / "lib"

    @property
    def checkpoint_location(self) -> str:
        return self.flink_checkpoint_dir or str(self.home / "flink" / "checkpoints")

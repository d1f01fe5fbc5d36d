"""The pure loadgen simulator: users meet running experiments through the assignment engine.

No Kafka here. :class:`LoadSimulator` yields batches of :data:`OutRecord` (logical topic, key, value
bytes) in send order and keeps :class:`LoadgenCounts`, the exact counts the stream's tables must
reproduce (docs/loadgen.md). Users are simulated in chunks of :data:`CHUNK_USERS`, each in its own
slice of the time window, so memory stays bounded and the stream stays (mostly) in event-time order.

Per chunk: units (each with an activity level) → ``evaluate_many`` per feature → first exposures (all
of a unit's at its arrival time) → SRM drop → purchases (probability × activity × lift), refunds of
some purchases, and pageviews and the catalog's other events (rate × activity × lift) strictly after
the arrival → with ``history_days``, pre-exposure activity of the same units before it → late events
delayed in send order → duplicates and invalid records spliced in.
Same options (seed and ``now`` included) → byte-identical records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np

from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec
from xpcore.errors import ValidationError
from xpstream.loadgen.invalid import InvalidRecordFactory, kind_of
from xpstream.loadgen.options import LoadgenCounts, LoadgenOptions

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec

__all__ = [
    "CHUNK_USERS",
    "EVENTS_PER_USER",
    "LoadSimulator",
    "LoadgenCounts",
    "LoadgenOptions",
    "OutRecord",
    "simulate_records",
]

OutRecord = tuple[str, bytes, bytes]
"""(logical topic name such as ``xp.exposures``, Kafka key, Kafka value)."""

CHUNK_USERS: Final = 20_000
EVENTS_PER_USER: Final = 5
"""Default metric events per simulated user (``--events`` overrides the total)."""
BASE_PURCHASE_PROBABILITY: Final = 0.1
"""Probability that a control unit purchases (once); ×(1+lift) per non-control assignment."""
LATE_DELAY_MS: Final = (1_000, 30_000)
"""A late event is sent this much (uniform, ms) after its event time, capped at its slice's end."""
DUPLICATE_GAP: Final = 1_000
"""A duplicate is re-sent up to this many records after its original."""
COUNTRIES: Final = ("US", "DE", "BR", "IN", "FR", "JP")
DEVICES: Final = ("mobile", "desktop", "tablet")
ACTIVITY_SHAPE: Final = 1.5
"""Units differ: each has an activity level ~ Gamma(shape, 1/shape) (mean 1) that scales its purchase
probability and its share of the other events, before and after exposure alike (what CUPED uses)."""
REFUND_PROBABILITY: Final = 0.08
"""Share of control purchases refunded (÷(1+lift)^k in treatment, so refunds per unit stay flat)."""
OTHER_EVENT_SHARE: Final = 0.15
"""Share of the non-purchase events given to each catalog event other than pageview/purchase/refund."""
FUNNEL_FIRST_STEP: Final = 0.6
"""With ``--funnel``: probability that a unit reaches the funnel's first step after its exposure."""
FUNNEL_NEXT_STEP: Final = 0.5
"""With ``--funnel``: probability that a unit at one step reaches the next one (× 1+F on the lifted step
in non-control variations)."""
HISTORY_EVENTS_PER_USER: Final = EVENTS_PER_USER
"""Mean non-purchase pre-exposure events of a unit of activity 1 (with ``history_days``)."""
BASE_EVENTS: Final = ("purchase", "pageview", "refund")
"""Event kinds with their own model; indices 0, 1, 2 of :attr:`LoadSimulator.event_names`."""
_DAY_MS: Final = 86_400_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _share(total: int, done: int, users: int, upto: int) -> int:
    """Exact cumulative split of ``total`` over users: the part of users [done, upto)."""
    return total * upto // users - total * done // users if users else 0


class LoadSimulator:
    """Generates the record stream in batches (one per chunk of users) and counts it."""

    def __init__(
        self, payload: Mapping[str, Any], experiments: Sequence[ExperimentSpec], options: LoadgenOptions
    ) -> None:
        from assignment import CompiledPayload

        options.check()
        self.options = options
        self.experiments = {spec.key: spec for spec in experiments}
        self.payload = CompiledPayload(payload)
        self.features = sorted({s.feature_key for s in experiments if s.feature_key in self.payload})
        self.hash_attributes = sorted({s.hash_attribute for s in experiments} - {"id"})
        others = sorted(set(options.catalog_events) - set(BASE_EVENTS))
        funnel_only = [step for step in options.funnel if step not in {*BASE_EVENTS, *others}]
        self.event_names = np.array([*BASE_EVENTS, *others, *funnel_only])
        """Names by kind code: 0 purchase, 1 pageview, 2 refund, the catalog's other events, then the
        funnel's steps that are none of those (sent by the funnel model only)."""
        self._funnel_kinds = [int(np.flatnonzero(self.event_names == step)[0]) for step in options.funnel]
        self._refunds = "refund" in options.catalog_events
        share = min(OTHER_EVENT_SHARE, 0.9 / len(others)) if others else 0.0
        self._other_kinds = np.arange(len(self.event_names))[[1, *range(3, 3 + len(others))]]
        self._other_shares = np.array([1.0 - share * len(others)] + [share] * len(others))
        self.counts = LoadgenCounts(users=options.users)
        self._rng = np.random.default_rng(options.seed)
        self._invalid = InvalidRecordFactory(experiments, options.max_record_bytes)
        self._exposure_codec = RecordCodec(Exposure, max_record_bytes=options.max_record_bytes)
        self._encoder = msgspec.json.Encoder()
        """Events skip the codec's per-record size check; :meth:`_encode_valid` checks the batch."""
        self._total_events = EVENTS_PER_USER * options.users if options.events is None else options.events
        now_ms = (options.now.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)
        self._t1 = int(now_ms)
        self._t0 = self._t1 - int(options.window_seconds * 1000)
        self._valid_total = 0
        self._latest = -1
        self.users_done = 0
        """Users simulated so far (for progress estimates)."""

    def batches(self) -> Iterator[list[OutRecord]]:
        """The records in send order, one list per chunk of users (each list non-empty)."""
        users = self.options.users
        chunks = max(1, -(-users // CHUNK_USERS))
        span = self._t1 - self._t0
        for chunk in range(chunks):
            lo, hi = chunk * users // chunks, (chunk + 1) * users // chunks
            s0, s1 = self._t0 + chunk * span // chunks, self._t0 + (chunk + 1) * span // chunks
            batch = self._chunk(lo, hi, s0, s1)
            self.users_done = hi
            if batch:
                yield batch

    # --- one chunk -------------------------------------------------------------------------------

    def _ids(self, count: int) -> list[str]:
        """``count`` random UUID4 strings from the seeded generator (as ``uuid.UUID(bytes=…, version=4)``)."""
        raw = np.frombuffer(self._rng.bytes(16 * count), dtype=np.uint8).reshape(count, 16).copy()
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
        text = raw.tobytes().hex()
        return [
            f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}"
            for t in (text[i : i + 32] for i in range(0, 32 * count, 32))
        ]

    def _chunk(self, lo: int, hi: int, s0: int, s1: int) -> list[OutRecord]:
        rng, opts, counts = self._rng, self.options, self.counts
        n = hi - lo
        seed = opts.seed
        unit_ids = [f"lg{seed}-{i}" for i in range(lo, hi)]
        countries = rng.integers(0, len(COUNTRIES), n)
        devices = rng.integers(0, len(DEVICES), n)
        units: list[dict[str, Any]] = []
        for j, unit_id in enumerate(unit_ids):
            unit = {"id": unit_id, "country": COUNTRIES[countries[j]], "device": DEVICES[devices[j]]}
            for attribute in self.hash_attributes:
                unit[attribute] = unit_id
            units.append(unit)
        # Assignment: (unit index, spec, variation id, bucket) per first exposure.
        assigned: list[tuple[int, ExperimentSpec, int, float | None]] = []
        for feature in self.features:
            for j, result in enumerate(self.payload.evaluate_many(feature, units)):
                spec = self.experiments.get(result.experiment_key or "")
                if not result.in_experiment or spec is None or result.variation_id is None:
                    continue
                if result.variation_id < len(spec.variations):
                    assigned.append((j, spec, result.variation_id, result.bucket))
        # SRM: drop a share of each experiment's last variation, with the unit's other records.
        dropped = np.zeros(n, dtype=bool)
        if opts.srm_skew > 0:
            for spec in self.experiments.values():
                last = len(spec.variations) - 1
                rows = np.array([j for j, s, v, _ in assigned if s is spec and v == last], dtype=np.int64)
                take = round(opts.srm_skew * len(rows))
                if take:
                    dropped[rng.choice(rows, size=take, replace=False)] = True
        counts.srm_dropped_units += int(dropped.sum())
        assigned = [a for a in assigned if not dropped[a[0]]]
        arrival = s0 + rng.integers(0, max(1, (s1 - s0) // 2), n)
        non_control = np.zeros(n, dtype=np.int64)
        for j, _, variation, _ in assigned:
            non_control[j] += variation != 0
        multiplier = (1.0 + opts.lift) ** non_control
        activity = rng.gamma(ACTIVITY_SHAPE, 1.0 / ACTIVITY_SHAPE, n)
        weight = activity * multiplier
        # Metric events for the whole chunk, then those of dropped units are removed.
        budget = _share(self._total_events, lo, opts.users, hi)
        p_purchase = np.minimum(1.0, BASE_PURCHASE_PROBABILITY * weight)
        buyers = np.flatnonzero(rng.random(n) < p_purchase)
        if len(buyers) > budget:
            buyers = np.sort(rng.choice(buyers, size=budget, replace=False))
        refunded = buyers[:0]  # positions in ``buyers`` of the refunded purchases
        if self._refunds and len(buyers):
            refunded = np.flatnonzero(rng.random(len(buyers)) < REFUND_PROBABILITY / multiplier[buyers])
            refunded = refunded[: budget - len(buyers)]
        rest = budget - len(buyers) - len(refunded)
        viewers = rng.choice(n, size=rest, p=weight / weight.sum()) if n else buyers[:0]
        other_kind = self._event_kinds(rest)
        event_units = np.concatenate([buyers, buyers[refunded], viewers]).astype(np.int64)
        kind = np.concatenate(
            [np.zeros(len(buyers), np.int64), np.full(len(refunded), 2, np.int64), other_kind]
        )
        room = np.maximum(1, s1 - arrival[event_units])
        event_time = arrival[event_units] + 1 + (rng.random(len(event_units)) * room).astype(np.int64)
        event_time = np.minimum(event_time, np.maximum(s1, arrival[event_units] + 1))
        if len(refunded):  # a refund follows its purchase (same millisecond when that is the slice's end)
            bought = event_time[refunded]
            after = bought + 1 + (rng.random(len(refunded)) * np.maximum(0, s1 - bought - 1)).astype(np.int64)
            event_time[len(buyers) : len(buyers) + len(refunded)] = np.maximum(bought, np.minimum(after, s1))
        if opts.funnel:
            f_units, f_kind, f_time = self._funnel_events(arrival, non_control, s1)
            event_units = np.concatenate([event_units, f_units])
            kind = np.concatenate([kind, f_kind])
            event_time = np.concatenate([event_time, f_time])
        late = rng.random(len(event_units)) < opts.late_fraction
        delay = rng.integers(LATE_DELAY_MS[0], LATE_DELAY_MS[1] + 1, len(event_units))
        send_time = np.where(late, np.maximum(event_time, np.minimum(event_time + delay, s1)), event_time)
        if opts.history_days > 0:  # before exposure, no lift: sent from the slice's start (a backfill)
            h_units, h_kind, h_time = self._history(activity, arrival)
            event_units = np.concatenate([event_units, h_units])
            kind = np.concatenate([kind, h_kind])
            event_time = np.concatenate([event_time, h_time])
            send_time = np.concatenate([send_time, np.maximum(h_time, s0)])
            self.counts.history_events += int((~dropped[h_units]).sum())
        keep = ~dropped[event_units]
        event_units, kind = event_units[keep], kind[keep]
        event_time, send_time = event_time[keep], send_time[keep]
        values = np.round(np.exp(rng.normal(3.5, 0.6, len(event_units))), 2)
        # Send order: by send time; exposures (at arrival) before the unit's events (strictly later).
        exposure_rows = np.array([a[0] for a in assigned], dtype=np.int64)
        times = np.concatenate([arrival[exposure_rows], send_time])
        order = np.argsort(times, kind="stable")
        exposure_ids, event_ids = self._ids(len(assigned)), self._ids(len(event_units))
        valid = self._encode_valid(
            order, assigned, unit_ids, units, arrival, exposure_ids,
            event_units, kind, event_time, send_time, values, event_ids,
        )  # fmt: skip
        exposed = {a[0] for a in assigned}
        counts.exposed_units += len(exposed)
        return self._splice(valid, unit_ids, s0, s1)

    def _encode_valid(
        self,
        order: np.ndarray,
        assigned: list[tuple[int, ExperimentSpec, int, float | None]],
        unit_ids: list[str],
        units: list[dict[str, Any]],
        arrival: np.ndarray,
        exposure_ids: list[str],
        event_units: np.ndarray,
        kind: np.ndarray,
        event_time: np.ndarray,
        send_time: np.ndarray,
        values: np.ndarray,
        event_ids: list[str],
    ) -> list[OutRecord]:
        """Encode every valid record, then arrange them in ``order`` and count them."""
        from xpcore.kafka import EVENTS, EXPOSURES

        counts = self.counts
        ms = timedelta(milliseconds=1)
        encode_exposure, encode_event = self._exposure_codec.encode, self._encoder.encode
        arrival_list = arrival.tolist()
        exposure_values = []
        for (j, spec, variation_id, bucket), exposure_id in zip(assigned, exposure_ids, strict=True):
            at = _EPOCH + arrival_list[j] * ms
            unit = units[j]
            variation_key = spec.variations[variation_id].key
            exposure_values.append(
                encode_exposure(
                    Exposure(
                        exposure_id=exposure_id,
                        unit_id=unit_ids[j],
                        hash_attribute=spec.hash_attribute,
                        experiment_key=spec.key,
                        variation_id=variation_id,
                        variation_key=variation_key,
                        feature_key=spec.feature_key,
                        bucket=bucket,
                        source=ExposureSource.LOADGEN,
                        attributes={"country": unit["country"], "device": unit["device"]},
                        exposed_at=at,
                        sent_at=at,
                    )
                )
            )
            by_variation = counts.per_experiment.setdefault(spec.key, {})
            by_variation[variation_key] = by_variation.get(variation_key, 0) + 1
        event_unit_list = event_units.tolist()
        is_purchase = kind == 0
        names = self.event_names[kind].tolist()
        amounts = np.where(is_purchase, values, np.nan).tolist()
        # ms since the epoch → datetime, built once per distinct millisecond (events share many).
        stamp = {t: _EPOCH + t * ms for t in np.unique(np.concatenate([event_time, send_time])).tolist()}
        event_values = [
            encode_event(
                MetricEvent(
                    event_id=event_id,
                    unit_id=unit_ids[j],
                    event_name=name,
                    value=None if amount != amount else amount,  # NaN: no value
                    occurred_at=stamp[time],
                    sent_at=stamp[sent],
                )
            )
            for event_id, j, name, amount, time, sent in zip(
                event_ids,
                event_unit_list,
                names,
                amounts,
                event_time.tolist(),
                send_time.tolist(),
                strict=True,
            )
        ]
        limit = self.options.max_record_bytes
        if event_values and max(map(len, event_values)) > limit:  # never with the fields above
            raise ValidationError(f"a simulated event is larger than max_record_bytes={limit}")
        exposures = len(assigned)
        unit_keys = [unit_id.encode() for unit_id in unit_ids]
        keys = [unit_keys[a[0]] for a in assigned] + [unit_keys[j] for j in event_unit_list]
        topics = [EXPOSURES] * exposures + [EVENTS] * len(event_values)
        positions = order.tolist()
        if len(positions) > 1:
            pick = itemgetter(*positions)
            out = list(zip(pick(topics), pick(keys), pick(exposure_values + event_values), strict=True))
        else:
            values_all = exposure_values + event_values
            out = [(topics[p], keys[p], values_all[p]) for p in positions]
        # Late: an event whose time is earlier than a record sent before it (within this chunk;
        # chunks cover consecutive time slices, so no record of an earlier chunk is later).
        event_times = np.concatenate([arrival[[a[0] for a in assigned]], event_time])[order]
        if len(event_times):
            before = np.maximum.accumulate(np.concatenate([[self._latest], event_times]))[:-1]
            counts.late += int(((event_times < before) & (order >= exposures)).sum())
            self._latest = max(self._latest, int(event_times.max()))
        counts.exposures += exposures
        counts.events += len(event_unit_list)
        counts.purchases += int(is_purchase.sum())
        counts.pageviews += int((kind == 1).sum())
        for code, number in zip(*np.unique(kind, return_counts=True), strict=True):
            name = str(self.event_names[code])
            counts.by_event_name[name] = counts.by_event_name.get(name, 0) + int(number)
        return out

    def _event_kinds(self, size: int) -> np.ndarray:
        """Kind codes of ``size`` non-purchase engagement events (pageviews and the catalog's others)."""
        if len(self._other_kinds) == 1:
            return np.ones(size, np.int64)
        return self._rng.choice(self._other_kinds, size=size, p=self._other_shares).astype(np.int64)

    def _funnel_events(
        self, arrival: np.ndarray, non_control: np.ndarray, s1: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The funnel model (``options.funnel``): units, kind codes and times of the step events, each step
        strictly after the previous one and after the unit's arrival (within its slice when there is room)."""
        rng, opts, n = self._rng, self.options, len(arrival)
        steps = len(opts.funnel)
        gap = 1 + (rng.random(n) * np.maximum(0, (s1 - arrival) // (steps + 1) - 1)).astype(np.int64)
        reached = np.ones(n, dtype=bool)
        units, kinds, times = [], [], []
        for k, (step, code) in enumerate(zip(opts.funnel, self._funnel_kinds, strict=True)):
            p = np.full(n, FUNNEL_FIRST_STEP if k == 0 else FUNNEL_NEXT_STEP)
            if opts.funnel_lift is not None and opts.funnel_lift[0] == step:
                p = np.minimum(1.0, p * (1.0 + opts.funnel_lift[1]) ** non_control)
            reached &= rng.random(n) < p
            rows = np.flatnonzero(reached)
            units.append(rows)
            kinds.append(np.full(len(rows), code, np.int64))
            times.append(arrival[rows] + (k + 1) * gap[rows])
        return np.concatenate(units), np.concatenate(kinds), np.concatenate(times)

    def _history(
        self, activity: np.ndarray, arrival: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pre-exposure events (units, kind codes, times in [arrival − history, arrival)): a purchase with
        probability ``BASE × activity`` and Poisson(``HISTORY_EVENTS_PER_USER × activity``) others."""
        rng, n = self._rng, len(activity)
        bought = np.flatnonzero(rng.random(n) < np.minimum(1.0, BASE_PURCHASE_PROBABILITY * activity))
        per_unit = rng.poisson(HISTORY_EVENTS_PER_USER * activity)
        others = np.repeat(np.arange(n, dtype=np.int64), per_unit)
        units = np.concatenate([bought.astype(np.int64), others])
        kind = np.concatenate([np.zeros(len(bought), np.int64), self._event_kinds(len(others))])
        span = max(1, int(self.options.history_days * _DAY_MS))
        time = arrival[units] - 1 - (rng.random(len(units)) * span).astype(np.int64)
        return units, kind, time

    def _splice(self, valid: list[OutRecord], unit_ids: list[str], s0: int, s1: int) -> list[OutRecord]:
        """Insert duplicates (byte-identical copies, after their original) and invalid records."""
        rng, opts, counts = self._rng, self.options, self.counts
        before = self._valid_total
        self._valid_total += len(valid)
        duplicates = round(opts.duplicate_fraction * self._valid_total) - round(
            opts.duplicate_fraction * before
        )
        share = opts.invalid_fraction / (1 - opts.invalid_fraction)
        invalid = round(share * self._valid_total) - round(share * before)
        if not valid:
            duplicates = 0
        extras: list[tuple[int, int, OutRecord]] = []  # (after valid position, tie-break, record)
        if duplicates:
            sources = rng.integers(0, len(valid), duplicates)
            gaps = rng.integers(0, DUPLICATE_GAP, duplicates)
            after = np.minimum(sources + gaps, len(valid) - 1)
            for k, (source, position) in enumerate(zip(sources.tolist(), after.tolist(), strict=True)):
                extras.append((position, k, valid[source]))
            counts.duplicates += duplicates
        if invalid and unit_ids:
            positions = rng.integers(-1, len(valid), invalid).tolist()
            owners = rng.integers(0, len(unit_ids), invalid).tolist()
            times = rng.integers(s0, max(s0 + 1, s1), invalid).tolist()
            ids = self._ids(invalid)
            have_experiments = bool(self.experiments)
            for k in range(invalid):
                kind = kind_of(counts.invalid, have_experiments=have_experiments)
                record = self._invalid.build(
                    kind,
                    record_id=ids[k],
                    unit_id=unit_ids[owners[k]],
                    at=_EPOCH + timedelta(milliseconds=times[k]),
                )
                extras.append((positions[k], duplicates + k, record))
                counts.invalid += 1
                counts.invalid_by_kind[kind.value] = counts.invalid_by_kind.get(kind.value, 0) + 1
        if not extras:
            return valid
        extras.sort(key=lambda extra: (extra[0], extra[1]))
        out: list[OutRecord] = [record for position, _, record in extras if position < 0]
        pending = [(position, record) for position, _, record in extras if position >= 0]
        cursor = 0
        for position, record in enumerate(valid):
            out.append(record)
            while cursor < len(pending) and pending[cursor][0] == position:
                out.append(pending[cursor][1])
                cursor += 1
        return out


def simulate_records(
    payload: Mapping[str, Any], experiments: Sequence[ExperimentSpec], options: LoadgenOptions
) -> tuple[list[OutRecord], LoadgenCounts]:
    """The whole record stream in send order, and its counts (for tests and small runs)."""
    simulator = LoadSimulator(payload, experiments, options)
    records = [record for batch in simulator.batches() for record in batch]
    return records, simulator.counts

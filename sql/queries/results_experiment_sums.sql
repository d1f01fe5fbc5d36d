-- results_experiment_sums: the sums of results_metric_sums for many metrics of one experiment at once,
-- per segment and variation (one scan of the attributed events instead of one per metric).
-- NOTE: jobs.results.store runs BatchPlan.sql() (jobs/results/batch.py), the same query with plain columns
-- instead of per-row arrays: one per-unit count (and total, for sums) per distinct (event, window) "cell",
-- shared by the sides over that cell, then one value per side. This file is its reference (the unit tests
-- check its text, bench/bench_results.py times both).
-- grain: segment × variation_id (one experiment)   time: first_exposed_at (units), occurred_at (events)
-- engine: reads xp.unit_exposures (AggregatingMergeTree, merged here), xp.attributed_events
--         (ReplacingMergeTree, FINAL) and, when dimension != '', xp.exposures (ReplacingMergeTree: the
--         attribute of each unit's first exposure).
--
-- Population: exactly as results_metric_sums. Metric "sides" are given as parallel arrays (1-based index
-- k): events[k], aggregations[k] (binary|count|sum; sum is over the event's `value`, NULL = 0) and
-- windows[k] (seconds after first exposure, 0 = none); event_names are the distinct events and
-- positions[k] = indexOf(event_names, events[k]) (given, so no lambda recomputes it per row). Properties and `unique` are not supported here:
-- jobs/results/batch.py sends those metrics to results_metric_sums. A unit's value on side k is computed
-- as in results_metric_sums (events with occurred_at < until, within the window); no event: 0.
-- Segment: attributes[dimension] of the unit's first exposure ('' when dimension = '' or the attribute is
-- missing). Sums add up, so the whole experiment is the sum over segments.
-- Returned per segment and variation: units, sums[k] = Σ value_k, squares[k] = Σ value_k²,
-- crosses[p] = Σ value_i · value_j with i = cross_a[p], j = cross_b[p] (ratio metrics' Σa·b).
-- parameters: experiment String, since/until DateTime64(3, 'UTC'), events Array(String),
--             event_names Array(String), positions Array(UInt32), aggregations Array(String),
--             windows Array(Float64), cross_a/cross_b Array(UInt32),
--             dimension String
WITH
    eligible AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id, min(first_exposed_at) AS first_exposure
        FROM xp.unit_exposures
        WHERE experiment_key = {experiment:String}
        GROUP BY unit_id
        HAVING min(min_variation_id) = max(max_variation_id)
           AND max(overridden) = 0
           AND first_exposure >= {since:DateTime64(3, 'UTC')}
           AND first_exposure < {until:DateTime64(3, 'UTC')}
    ),
    segments AS
    (
        SELECT unit_id, argMin(attributes[{dimension:String}], exposed_at) AS segment
        FROM xp.exposures
        WHERE experiment_key = {experiment:String} AND {dimension:String} != ''
        GROUP BY unit_id
    ),
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            -- compare small numbers inside the lambda (a captured String column is copied per element):
            -- the event's first position in events[] against each side's, and the delay in ms
            indexOf({event_names:Array(String)}, a.event_name) AS position,
            toFloat64(dateDiff('millisecond', a.first_exposed_at, a.occurred_at)) AS delay,
            arrayMap(
                (side, window) -> toUInt64(side = position AND (window = 0 OR delay <= window * 1000)),
                {positions:Array(UInt32)}, {windows:Array(Float64)}) AS hits,
            ifNull(a.value, 0.) AS number
        FROM xp.attributed_events AS a FINAL
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN {event_names:Array(String)}
          AND a.occurred_at < {until:DateTime64(3, 'UTC')}
    ),
    per_unit AS
    (
        SELECT
            unit_id,
            variation_id,
            sumForEach(hits) AS counts,
            sumForEach(arrayMap(hit -> hit * number, hits)) AS totals
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    valued AS
    (
        SELECT
            s.segment AS segment,
            e.variation_id AS variation_id,
            arrayMap(
                (aggregation, n, total) -> multiIf(
                    aggregation = 'binary', toFloat64(n > 0),
                    aggregation = 'count', toFloat64(n),
                    aggregation = 'sum', total,
                    0.),
                {aggregations:Array(String)},
                arrayResize(u.counts, length({events:Array(String)}), toUInt64(0)),
                arrayResize(u.totals, length({events:Array(String)}), 0.)) AS v
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
        LEFT JOIN segments AS s ON s.unit_id = e.unit_id
    )
SELECT
    segment,
    variation_id,
    toUInt64(count()) AS units,
    sumForEach(v) AS sums,
    sumForEach(arrayMap(x -> x * x, v)) AS squares,
    sumForEach(arrayMap((i, j) -> v[i] * v[j], {cross_a:Array(UInt32)}, {cross_b:Array(UInt32)})) AS crosses
FROM valued
GROUP BY segment, variation_id
ORDER BY segment, variation_id
SETTINGS join_use_nulls = 0

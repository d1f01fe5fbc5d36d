
SELECT
    segment,
    variation_id,
    toUInt64(count()) AS units,
    sumForEach(v) AS sums,
    sumForEach(arrayMap(t -> t * t, v)) AS squares,
    [sum(v[2] * v[4])] AS crosses
FROM
(
    SELECT
        if({dimension:String} = '', '', attributes[{dimension:String}]) AS segment,
        variation_id,
        [toFloat64(counts[1] > 0), totals[1], toFloat64(counts[2]), toFloat64(counts[3])] AS v
    FROM xp.unit_values FINAL
    WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String} AND eligible
      AND first_exposed_at >= {since:DateTime64(3, 'UTC')}
      AND first_exposed_at < {until:DateTime64(3, 'UTC')}
)
GROUP BY segment, variation_id
ORDER BY segment, variation_id

-- stream_recent_events: events loaded since a time, with the experiments each is already attributed to;
-- the stream holds them again on start so late exposures (and a crash between inserts) still attribute them.
-- grain: one row per event   time: ingested_at   source: xp.events, xp.attributed_events
-- parameters: since DateTime64(3, 'UTC')
SELECT
    e.event_id AS event_id,
    e.unit_id AS unit_id,
    e.event_name AS event_name,
    e.value AS value,
    e.occurred_at AS occurred_at,
    e.ingested_at AS ingested_at,
    a.experiments AS experiments
FROM xp.events AS e
LEFT JOIN
(
    SELECT event_id, groupUniqArray(toString(experiment_key)) AS experiments
    FROM xp.attributed_events
    WHERE event_id IN (SELECT event_id FROM xp.events WHERE ingested_at >= {since:DateTime64(3, 'UTC')})
    GROUP BY event_id
) AS a ON e.event_id = a.event_id
WHERE e.ingested_at >= {since:DateTime64(3, 'UTC')}
ORDER BY e.ingested_at

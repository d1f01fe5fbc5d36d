-- quality_alert_state: per alert fingerprint, its latest state and when it last fired.
-- grain: fingerprint   time: at   engine: xp.alerts (MergeTree)
-- Open alerts are the rows with latest_state = 'firing'; last_fired_at drives the quiet period.
SELECT
    fingerprint,
    argMax(state, at) AS latest_state,
    max(at) AS changed_at,
    maxIf(at, state = 'firing') AS last_fired_at
FROM xp.alerts
GROUP BY fingerprint
ORDER BY fingerprint

-- Dashboards · data quality and health: open alerts = fingerprints whose latest row has state 'firing'.
-- grain: fingerprint   time: at   engine: xp.alerts (MergeTree)
SELECT
    fingerprint, alert_id, check, experiment, table_name, detail, run_id,
    latest_at AS at,
    first_fired_at
FROM
(
    SELECT
        fingerprint,
        argMax(alert_id, alerts.at) AS alert_id,
        argMax(alerts.state, alerts.at) AS latest_state,
        argMax(alerts.check, alerts.at) AS check,
        argMax(alerts.experiment, alerts.at) AS experiment,
        argMax(alerts.table_name, alerts.at) AS table_name,
        argMax(alerts.detail, alerts.at) AS detail,
        argMax(alerts.run_id, alerts.at) AS run_id,
        max(alerts.at) AS latest_at,
        minIf(alerts.at, alerts.state = 'firing') AS first_fired_at
    FROM xp.alerts AS alerts
    GROUP BY fingerprint
)
WHERE latest_state = 'firing'
ORDER BY at DESC

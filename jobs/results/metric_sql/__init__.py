"""The one generator of the SQL that computes a unit's metric value, for every results path.

- :mod:`~jobs.results.metric_sql.rule` — the rule: which units count (one variation, never overridden,
  first exposed in the window), which events count for a metric side (its event, within its attribution
  window after the first exposure, before ``until``), the value of each aggregation, the segment, the
  CUPED covariate window;
- :mod:`~jobs.results.metric_sql.scan` — the live scan's sums: every simple metric in one scan
  (``BatchPlan.sql()``), any metric on its own, with a segment breakdown or the CUPED covariate;
- :mod:`~jobs.results.metric_sql.unit_values` — ``xp.unit_values``: build/refresh the per-unit rows and
  read their sums back.

SQL text is generated, not kept in ``sql/queries/`` files, because every shape is a composition of the
same fragments (decision 0047); the shapes are checked as text against snapshots in
``tests/unit/results/metric_sql_snapshots/`` (``XP_UPDATE_SNAPSHOTS=1`` rewrites them). Pure.

No input reaches the text: experiment keys, event names, property names, windows, the segment attribute and
the time bounds are bound parameters (``{name:Type}``); the f-strings interpolate only this package's
constants and fragments (hence bandit's B608 is marked ``nosec`` on them).
"""

"""Experiment results: per-unit metric values in ClickHouse → per-variation sums → statistics → the contract.

The package, in the order of the flow:

- :mod:`jobs.results.metric_sql` — the one generator of every results query: which units and events
  count for a metric (``rule``), the live scan (``scan``) and ``xp.unit_values`` (``unit_values``);
- :mod:`jobs.results.batch` — which metrics one scan answers (:class:`~jobs.results.batch.BatchPlan`);
- :mod:`jobs.results.sums` — the warehouse calls: per-variation sums (:mod:`jobs.results.rows`);
- :mod:`jobs.results.analysis` — sums → engine statistics → comparisons, SRM, CUPED, corrections
  (:mod:`jobs.results.adjustments`); :mod:`jobs.results.segments` — the breakdown by an attribute;
- :mod:`jobs.results.contract` — :class:`~jobs.results.contract.ExperimentAnalysis`, the
  ``xp results --format json`` contract;
- :mod:`jobs.results.compute` — one experiment end to end (``xp results``, dashboards);
- :mod:`jobs.results.snapshots` — ``xp.results`` rows; :mod:`jobs.results.stats_job` — ``xp jobs run
  stats``.

Nothing is re-exported here: import from the module that defines a name.
"""

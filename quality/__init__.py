"""Data quality (issue #6): great-expectations suites, experiment health checks, reports and alerts.

Entry point: :func:`quality.run.run_quality` (``xp jobs run quality``). Pure parts: ``window``,
``outcomes``, ``rules``, ``health``, ``suites``, the decision half of ``alerts``; adapters: ``gx_runner``
(the only module importing great_expectations), ``store``, ``registry_source``, ``report``. Settings:
:class:`quality.settings.QualitySettings`. docs/quality.md lists every check.
"""

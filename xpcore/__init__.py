"""xpcore: the foundation every xpstream package stands on.

Errors (:mod:`xpcore.errors`), settings (:mod:`xpcore.config`, built by entry points with
``load_settings``), time options (:mod:`xpcore.timeparse`), logging, the HTTP server limits, registry
signing and the adapters to the two real components: Kafka (:mod:`xpcore.kafka`) and the warehouse
(:mod:`xpcore.warehouse`, chDB embedded or a ClickHouse server). It imports no domain package and nothing of
the application: ``assignment``, ``pipelines``, ``jobs``, ``quality``, ``dashboards`` build on it, and the
application package ``xpstream`` (the ``xp`` command line, ``xp up``, the scheduler, the stack, loadgen) sits
on top of them all. docs/architecture.md draws the layers.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

"""xpstream core: configuration, errors, the `xp` command line and the Kafka/warehouse adapters.

The domain packages live beside it at the top level: ``assignment`` (who sees what), ``pipelines``
(stream jobs), ``jobs`` (batch jobs), ``schemas`` (event contracts) and ``quality`` (data checks).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

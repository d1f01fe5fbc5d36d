"""xpstream, the application: the ``xp`` command line, ``xp up``, its scheduler, the local stack and loadgen.

It sits on top of the domain packages beside it (``assignment`` who sees what, ``pipelines`` stream jobs,
``jobs`` batch jobs, ``schemas`` event contracts, ``quality`` data checks, ``dashboards``), which in turn
stand on the foundation ``xpcore`` (errors, settings, Kafka and warehouse adapters). Nothing below this
package imports it.
"""

from xpcore import __version__
from xpstream.client import Client, connect

__all__ = ["Client", "__version__", "connect"]

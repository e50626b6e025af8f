"""The perf section of the admin: the monitor's pages and the load-test runs. Each module
registers what it shows."""

from perf.loadtest import admin as loadtest_admin  # noqa: F401
from perf.monitor import cache as cache_page  # noqa: F401
from perf.monitor import indexes as indexes_page  # noqa: F401
from perf.monitor import live as live_page  # noqa: F401
from perf.monitor import overview as overview_page  # noqa: F401
from perf.monitor import pool as pool_page  # noqa: F401
from perf.monitor import queries as queries_page  # noqa: F401

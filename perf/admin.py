"""The perf section of the admin: the monitor's pages and the load-test runs. Each module
registers what it shows."""

from perf.loadtest import admin as loadtest_admin  # noqa: F401

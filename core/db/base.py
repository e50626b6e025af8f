"""Django's PostgreSQL backend with the availability guard of core.db.availability and, when
METRICS_ENABLED, django-prometheus's instrumented cursors plus the guide's per-table timings
and the slow-query log (core.instrumentation).

Everything else (the psycopg 3 pool, statement timeouts, SQL) is Django's own: django-prometheus
only swaps the cursor class psycopg is given (``cursor_factory``) and leaves ``OPTIONS["pool"]``
to Django (tests/core/test_metrics.py checks the pool is the one in use).
"""

from __future__ import annotations

from django.conf import settings
from django.db.backends.postgresql import base
from django_prometheus.db.backends.postgresql import base as prometheus_base

from core.db import availability
from core.instrumentation import observe_query

_Base = prometheus_base.DatabaseWrapper if settings.METRICS_ENABLED else base.DatabaseWrapper


class DatabaseWrapper(_Base):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        if settings.METRICS_ENABLED:
            self.execute_wrappers.append(observe_query)
        pool_options = settings_dict["OPTIONS"].get("pool")
        if isinstance(pool_options, dict):
            # The pool gives up reconnecting at once (reconnect_timeout, in settings) and says so
            # here; the guard then probes and lets traffic back when PostgreSQL answers.
            pool_options.setdefault("reconnect_failed", availability.pool_gave_up)

    def get_new_connection(self, conn_params):
        if self.pool is None:
            return super().get_new_connection(conn_params)
        availability.before_checkout(self)
        try:
            connection = super().get_new_connection(conn_params)
        except availability.CHECKOUT_FAILURES:
            availability.checkout_failed()
            raise
        return connection

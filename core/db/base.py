"""Django's PostgreSQL backend with the availability guard of core.db.availability and, when
METRICS_ENABLED, django-prometheus's instrumented cursors plus the guide's per-table timings
and the slow-query log (core.instrumentation).

Everything else (the psycopg 3 pool, statement timeouts, SQL) is Django's own: django-prometheus
only swaps the cursor class psycopg is given (``cursor_factory``) and leaves ``OPTIONS["pool"]``
to Django (tests/core/test_metrics.py checks the pool is the one in use).
"""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from django.db.utils import InterfaceError, OperationalError
from django_prometheus.db import common as prometheus_common
from django_prometheus.db.backends.postgresql import base as prometheus_base

from core.db import availability, replicas
from core.instrumentation import observe_query

_Base = prometheus_base.DatabaseWrapper if settings.METRICS_ENABLED else base.DatabaseWrapper
# django-prometheus's instrumented cursor classes by (psycopg cursor class, alias, vendor).
_CURSOR_CLASSES: dict[tuple, type] = {}


class DatabaseWrapper(_Base):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        self.is_replica = alias.startswith(replicas.REPLICA_PREFIX)
        if settings.METRICS_ENABLED:
            self.execute_wrappers.append(observe_query)
        if self.is_replica:
            self.execute_wrappers.append(self._replica_guard)
        pool_options = settings_dict["OPTIONS"].get("pool")
        if isinstance(pool_options, dict):
            # The pool gives up reconnecting at once (reconnect_timeout, in settings) and says so
            # here; the guard then probes and lets traffic back when PostgreSQL answers. A
            # replica's pool tells core.db.replicas instead: the primary is not down.
            giving_up = replicas.pool_gave_up if self.is_replica else availability.pool_gave_up
            pool_options.setdefault("reconnect_failed", giving_up)

    def _replica_guard(self, execute, sql, params, many, context):
        """A replica that loses its connection or cancels a query for a recovery conflict is
        skipped, and the request runs again on the primary (core.db.replicas). A statement
        timeout is the query's cost, not the replica's fault: it is not retried."""
        try:
            return execute(sql, params, many, context)
        except (OperationalError, InterfaceError) as exc:
            if not isinstance(exc.__cause__, psycopg.errors.QueryCanceled):
                replicas.replica_failed(self.alias, exc)
            raise

    def get_connection_params(self):
        """Django's parameters; with metrics on, psycopg's cursor class is django-prometheus's
        instrumented one, as its own backend gives it, but built once per base class, alias and
        vendor. Django asks for the parameters on every connect, which with the pool is every
        checkout, and django-prometheus built a new class each time: 1.5 % of a worker's CPU
        under the peak profile (tests/core/test_metrics.py)."""
        if not settings.METRICS_ENABLED:
            return super().get_connection_params()
        # What django-prometheus's get_connection_params extends (Django's own), then its line.
        params = base.DatabaseWrapper.get_connection_params(self)
        key = (params["cursor_factory"], self.alias, self.vendor)
        wrapper = _CURSOR_CLASSES.get(key)
        if wrapper is None:
            wrapper = _CURSOR_CLASSES.setdefault(key, prometheus_common.ExportingCursorWrapper(*key))
        params["cursor_factory"] = wrapper
        return params

    def get_new_connection(self, conn_params):
        if self.pool is None:
            return super().get_new_connection(conn_params)
        if self.is_replica:
            try:
                return super().get_new_connection(conn_params)
            except availability.CHECKOUT_FAILURES as exc:
                replicas.replica_failed(self.alias, exc)
                raise
        availability.before_checkout(self)
        try:
            connection = super().get_new_connection(conn_params)
        except availability.CHECKOUT_FAILURES:
            availability.checkout_failed()
            raise
        return connection

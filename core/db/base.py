"""Django's PostgreSQL backend with the availability guard of core.db.availability.

Everything else (the psycopg 3 pool, statement timeouts, SQL) is Django's own.
"""

from __future__ import annotations

from django.db.backends.postgresql import base

from core.db import availability


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
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

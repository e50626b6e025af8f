"""The monitor: what operators watch, as pages of the Django admin under "Perf".

It reads PostgreSQL's catalogs (pg_stat_statements, pg_stat_activity, pg_stat_user_tables...),
Redis's INFO and the app's own counters and pool statistics; it imports no domain app, except
admin actions that call domain services. Every page's SQL runs on a connection of its own with
a short statement timeout (PERF_STATEMENT_TIMEOUT_MS, see db.py), so a dashboard can never load
or block the database it watches.
"""

"""The index suggestions' read of pg_qualstats (perf/monitor/suggestions.py QUALS_SQL), summed per
predicate, against the same read row per entry (the previous commit's), with pg_qualstats
holding one entry per constant of N distinct-constant queries.

    .venv/bin/python bench/qualstats_sql.py [--database bx_seed] [--constants 9000]

Fills pg_qualstats of the given database (a scratch or seeded one: it only reads bounties),
then prints the median of 5 runs of each. Not a test: prints figures, asserts nothing about
time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")
import django

django.setup()
from django.conf import settings  # noqa: E402

from perf.monitor.suggestions import QUALS_SQL  # noqa: E402

# Per entry: the same read without the GROUP BY (what the page ran before).
PER_ENTRY_SQL = (
    QUALS_SQL.replace("sum(q.nbfiltered) AS nbfiltered", "q.nbfiltered")
    .replace("sum(q.execution_count) AS execution_count", "q.execution_count")
    .replace("count(*) AS entries", "1 AS entries")
)
PER_ENTRY_SQL = (
    PER_ENTRY_SQL[: PER_ENTRY_SQL.index("    GROUP BY q.lrelid")]
    + PER_ENTRY_SQL[PER_ENTRY_SQL.index("),\nquals AS") :]
)


def timed(conn: psycopg.Connection, sql: str) -> tuple[float, int]:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        rows = conn.execute(sql).fetchall()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="bx_seed")
    parser.add_argument("--constants", type=int, default=9000)
    args = parser.parse_args()
    db = settings.DATABASES["default"]
    conn = psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=args.database,
        autocommit=True,
    )  # fmt: skip
    for n in range(args.constants):  # a literal each: pg_qualstats keys entries by constant
        literal = sql.Literal(n)
        conn.execute(
            sql.SQL("SELECT id FROM bounties_bounty WHERE view_count = {} AND amount > {} LIMIT 1").format(
                literal, literal
            )
        )
    entries = conn.execute(
        "SELECT count(*) FROM pg_qualstats() "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()[0]
    per_entry_ms, per_entry_rows = timed(conn, PER_ENTRY_SQL)
    summed_ms, summed_rows = timed(conn, QUALS_SQL)
    print(f"pg_qualstats entries for {args.database}: {entries:,}")
    print(f"  one row per entry (before): {per_entry_ms:8.1f} ms median, {per_entry_rows:,} rows")
    print(f"  summed per predicate (now): {summed_ms:8.1f} ms median, {summed_rows:,} rows")
    print(f"  ratio before / now: {per_entry_ms / summed_ms:.1f}x")


if __name__ == "__main__":
    main()

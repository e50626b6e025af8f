"""Synthetic marketplace rows in bulk, for EXPLAIN tests and benchmarks (bench/ imports it too),
one SQL statement each. The API never uses it, so it lives with the tests.

The bulk statements run under MAINTENANCE_STATEMENT_TIMEOUT_MS, not the API's 10 s: 200,000
messages with their foreign-key checks outlasted it on CI's machine.

The search vocabulary includes the load tests' terms (web, mobile, design, data, test), each
topic appearing in about 2 % of titles, so searches are selective the way real ones are.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection

from core.db.maintenance import maintenance_statement_timeout
from messaging.services import pair_key

TOPICS = [
    "web", "mobile", "design", "data", "test", "react", "kotlin", "swift", "django", "figma",
    "excel", "tableau", "selenium", "wordpress", "shopify", "flutter", "pandas", "postgres",
    "photoshop", "illustrator", "seo", "copywriting", "translation", "bookkeeping", "moving",
    "cleaning", "plumbing", "gardening", "tutoring", "cypress", "android", "ios", "rust", "golang",
    "kubernetes", "terraform", "blender", "unity", "arduino", "scraping", "chatbot", "newsletter",
    "podcast", "video", "animation", "branding", "logo", "dashboard", "etl", "airflow", "spark",
    "accessibility", "security",
]  # fmt: skip


def insert_bounties(*, count: int, owner_ids: list[int]) -> None:
    """Insert ``count`` bounties spread over ``owner_ids``: 70 % open, 20 % completed (with a
    hunter), 10 % cancelled, one per minute back in time; then ANALYZE both tables. No escrow rows: use it
    for read-path measurements, not for money."""
    with maintenance_statement_timeout(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO bounties_bounty (owner_id, title, description, amount, is_for_honor, category,
                location, work_type, is_time_sensitive, skills_required, status, hunter_id, view_count,
                created_at, updated_at)
            SELECT (%(owners)s::bigint[])[1 + i %% %(n_owners)s],
                   initcap((%(topics)s::text[])[1 + i %% %(n_topics)s]) || ' task number ' || i,
                   'We need help with ' || (%(topics)s::text[])[1 + (i * 7) %% %(n_topics)s]
                       || ' for a small business; the details are in the attached brief, number ' || i,
                   10 + i %% 490, false, 'other', '', 'online', false, '{}',
                   CASE WHEN i %% 10 < 7 THEN 'open' WHEN i %% 10 < 9 THEN 'completed' ELSE 'cancelled' END,
                   CASE WHEN i %% 10 IN (7, 8) THEN (%(owners)s::bigint[])[1 + (i + 1) %% %(n_owners)s] END,
                   i %% 1000, now() - i * interval '1 minute', now()
            FROM generate_series(1, %(count)s) AS i
            """,
            {
                "owners": owner_ids,
                "n_owners": len(owner_ids),
                "topics": TOPICS,
                "n_topics": len(TOPICS),
                "count": count,
            },
        )
        # Fresh rows have no planner statistics until autovacuum runs: take them now, for the
        # owners too, or the planner plans for a one-row users table.
        cursor.execute(f"ANALYZE bounties_bounty, {get_user_model()._meta.db_table}")


def insert_conversations(*, pairs: list[tuple[int, int]], messages_each: int) -> list[int]:
    """Insert one 1:1 conversation per (a, b) pair (pairs must be distinct, as the unique index
    requires), each with ``messages_each`` messages alternating between a and b, one per minute
    back in time, the preview columns filled in; then ANALYZE. Returns the conversation ids in
    the order of ``pairs``."""
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    keys = [pair_key(a, b) for a, b in pairs]
    with maintenance_statement_timeout(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO messaging_conversation (is_group, name, created_by_id, pair_key, created_at,
                updated_at, last_message_preview, last_message_sender_id, last_message_at)
            SELECT false, '', a, key, now() - interval '30 days', now() - n * interval '1 minute',
                   'Message 1 about the work', a, now() - n * interval '1 minute'
            FROM unnest(%(a)s::bigint[], %(keys)s::text[]) WITH ORDINALITY AS t(a, key, n)
            RETURNING id, pair_key
            """,
            {"a": first, "keys": keys},
        )
        by_key = {key: pk for pk, key in cursor.fetchall()}
        ids = [by_key[key] for key in keys]
        cursor.execute(
            """
            INSERT INTO messaging_participant (conversation_id, user_id, joined_at)
            SELECT conv, member, now() - interval '30 days'
            FROM unnest(%(ids)s::bigint[], %(a)s::bigint[], %(b)s::bigint[]) AS t(conv, a, b),
                 LATERAL (VALUES (a), (b)) AS m(member)
            """,
            {"ids": ids, "a": first, "b": second},
        )
        cursor.execute(
            """
            INSERT INTO messaging_message (conversation_id, sender_id, text, created_at)
            SELECT conv, CASE WHEN m %% 2 = 1 THEN a ELSE b END, 'Message ' || m || ' about the work',
                   now() - (m * interval '1 minute')
            FROM unnest(%(ids)s::bigint[], %(a)s::bigint[], %(b)s::bigint[]) AS t(conv, a, b)
            CROSS JOIN generate_series(1, %(per)s) AS m
            """,
            {"ids": ids, "a": first, "b": second, "per": messages_each},
        )
        cursor.execute("ANALYZE messaging_conversation, messaging_participant, messaging_message")
    return ids

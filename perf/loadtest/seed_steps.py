"""The SQL steps of seed_data (perf/loadtest/seed.py runs them in order, in one transaction).

Each step is one set-based INSERT ... SELECT (or UPDATE) that generates rows inside PostgreSQL.
Table names come from the models' ``_meta`` (``{bounty}`` in a statement is
``Bounty._meta.db_table``), so a renamed table cannot leave a step writing to the old one. Two
temporary tables carry the generated ids between steps: ``seed_users`` (n, id) and
``seed_conversations`` (id, a, b, started).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from accounts.models import User
from bounties.models import Bounty, BountyRequest
from messaging.models import Conversation, Message, Participant
from perf.loadtest.vocabulary import CITIES, CLIENTS, MESSAGE_LINES, SENTENCES, VERBS, VOCABULARY
from wallet.models import WalletAccount, WalletTransaction

if TYPE_CHECKING:
    from perf.loadtest.seed import SeedPlan

TABLES = {
    model._meta.model_name: model._meta.db_table
    for model in (
        User,
        Bounty,
        BountyRequest,
        WalletTransaction,
        WalletAccount,
        Conversation,
        Participant,
        Message,
    )
}


def _sql(cursor, statement: str, params: dict | None = None) -> int:
    """Run one step's statement, its ``{model}`` placeholders replaced by the tables' names."""
    cursor.execute(statement.format(**TABLES), params or {})
    return cursor.rowcount


def insert_users(cursor, plan: SeedPlan, *, password: str) -> int:
    """plan.users users ``<prefix><n>``, all with ``password`` (a hash), listed in seed_users."""
    rows = _sql(
        cursor,
        """
        INSERT INTO {user} (username, email, password, first_name, last_name, is_superuser,
            is_staff, is_active, date_joined, updated_at, display_name, avatar_url, bio, location, skills)
        SELECT %(prefix)s || n, %(prefix)s || n || '@example.com', %(password)s, '', '', false,
               false, true, now() - (random() * 400) * interval '1 day', now(),
               'User ' || n, '', 'Freelancer since ' || (2010 + n %% 15) || '.',
               (%(cities)s::text[])[1 + floor(random() * %(n_cities)s)::int],
               ARRAY[(%(skills)s::text[])[1 + n %% %(n_skills)s]]
        FROM generate_series(1, %(users)s) AS n
        """,
        {
            "prefix": plan.prefix,
            "password": password,
            "cities": CITIES,
            "n_cities": len(CITIES),
            "skills": [topic for topics, _ in VOCABULARY.values() for topic in topics],
            "n_skills": sum(len(topics) for topics, _ in VOCABULARY.values()),
            "users": plan.users,
        },
    )
    _sql(
        cursor,
        "INSERT INTO seed_users (n, id) SELECT substr(username, %(offset)s)::int, id FROM {user} "
        "WHERE username ~ %(pattern)s",
        {"offset": len(plan.prefix) + 1, "pattern": f"^{plan.prefix}[0-9]+$"},
    )
    return rows


def insert_bounties(cursor, plan: SeedPlan) -> int:
    categories = list(VOCABULARY)
    return _sql(
        cursor,
        """
        WITH params AS (
            SELECT i,
                   1 + floor(random() * %(n_cat)s)::int AS c,
                   random() AS r_status, random() AS r_honor, random() AS r_topic, random() AS r_what,
                   1 + floor(random() * %(users)s)::int AS owner_n,
                   floor(random() * (%(users)s - 1))::int AS hunter_offset,
                   now() - (power(random(), 1.5) * 365) * interval '1 day' AS created
            FROM generate_series(1, %(bounties)s) AS i
        ), shaped AS (
            SELECT p.*,
                   CASE WHEN r_status < 0.40 THEN 'open' WHEN r_status < 0.50 THEN 'in_progress'
                        WHEN r_status < 0.80 THEN 'completed' WHEN r_status < 0.92 THEN 'cancelled'
                        ELSE 'archived' END AS status,
                   r_honor < 0.05 AS honor,
                   (%(topics)s::text[])[c][1 + floor(r_topic * 5)::int] AS topic,
                   (%(whats)s::text[])[c][1 + floor(r_what * 4)::int] AS what
            FROM params p
        )
        INSERT INTO {bounty} (owner_id, title, description, amount, is_for_honor, category, location,
            work_type, is_time_sensitive, deadline, skills_required, status, hunter_id, view_count,
            created_at, updated_at)
        SELECT o.id,
               (%(verbs)s::text[])[1 + i %% %(n_verbs)s] || ' a ' || s.topic || ' ' || s.what
                   || ' for ' || (%(clients)s::text[])[1 + i %% %(n_clients)s],
               'We need ' || s.topic || ' help: ' || s.what || '. '
                   || (%(sentences)s::text[])[1 + i %% %(n_sent)s] || ' '
                   || (%(sentences)s::text[])[1 + (i / 7) %% %(n_sent)s] || ' '
                   || (%(sentences)s::text[])[1 + (i / 49) %% %(n_sent)s],
               CASE WHEN s.honor THEN 0 ELSE round((5 + power(random(), 2) * 1995)::numeric, 2) END,
               s.honor, (%(categories)s::text[])[s.c],
               CASE WHEN s.c = %(errands)s THEN (%(cities)s::text[])[1 + i %% %(n_cities)s] ELSE '' END,
               CASE WHEN s.c = %(errands)s THEN 'in_person' ELSE 'online' END,
               random() < 0.2,
               CASE WHEN random() < 0.5 THEN s.created + (7 + floor(random() * 60)) * interval '1 day' END,
               ARRAY[s.topic], s.status,
               CASE WHEN s.status IN ('in_progress', 'completed', 'archived')
                    THEN (SELECT id FROM seed_users WHERE n = 1 + (s.owner_n + s.hunter_offset) %% %(users)s)
               END,
               floor(exp(random() * 9))::bigint,
               s.created, s.created
        FROM shaped s JOIN seed_users o ON o.n = s.owner_n
        ORDER BY s.created
        """,
        {
            "n_cat": len(categories),
            "users": plan.users,
            "bounties": plan.bounties,
            "topics": [topics[:5] for topics, _ in VOCABULARY.values()],
            "whats": [whats[:4] for _, whats in VOCABULARY.values()],
            "verbs": VERBS,
            "n_verbs": len(VERBS),
            "clients": CLIENTS,
            "n_clients": len(CLIENTS),
            "sentences": SENTENCES,
            "n_sent": len(SENTENCES),
            "categories": categories,
            "errands": categories.index("errands") + 1,
            "cities": CITIES,
            "n_cities": len(CITIES),
        },
    )


def insert_applications(cursor) -> int:
    """The accepted application of every worked bounty, a rejected rival on a third of them,
    and one pending application on half the open bounties (about two per user)."""
    return _sql(
        cursor,
        """
        WITH candidates AS (
            SELECT b.id AS bounty_id, b.hunter_id, 'accepted' AS status, b.created_at
            FROM {bounty} b JOIN seed_users o ON o.id = b.owner_id WHERE b.hunter_id IS NOT NULL
            UNION ALL
            SELECT b.id, u.id, CASE WHEN b.status = 'open' THEN 'pending' ELSE 'rejected' END, b.created_at
            FROM {bounty} b JOIN seed_users o ON o.id = b.owner_id
            JOIN seed_users u ON u.n = 1 + (b.id * 7919) %% (SELECT count(*) FROM seed_users)
            WHERE ((b.status = 'open' AND b.id %% 2 = 0) OR (b.hunter_id IS NOT NULL AND b.id %% 3 = 0))
              AND u.id <> b.owner_id AND u.id IS DISTINCT FROM b.hunter_id
        )
        INSERT INTO {bountyrequest} (bounty_id, hunter_id, message, status, created_at, updated_at)
        SELECT bounty_id, hunter_id,
               'I would like to work on this. ' || (%(sentences)s::text[])[1 + bounty_id %% %(n)s]
                   || ' I have relevant experience and can start this week.',
               status, created_at + interval '2 hours', created_at + interval '1 day'
        FROM candidates
        """,
        {"sentences": SENTENCES, "n": len(SENTENCES)},
    )


def insert_bounty_money(cursor) -> int:
    fee = settings.PLATFORM_FEE_PERCENT
    return _sql(
        cursor,
        """
        INSERT INTO {wallettransaction} (user_id, type, amount, bounty_id, status, description,
            reference, idempotency_key, created_at, updated_at)
        SELECT m.user_id, m.type, m.amount, b.id, 'completed', m.type || ' for bounty #' || b.id, '', '',
               b.created_at + m.delay, b.created_at + m.delay
        FROM {bounty} b JOIN seed_users o ON o.id = b.owner_id
        CROSS JOIN LATERAL (VALUES
            (b.owner_id, 'escrow', -b.amount, interval '0', true),
            (b.hunter_id, 'release', b.amount, interval '9 days', b.status IN ('completed', 'archived')),
            (b.hunter_id, 'fee', -round(b.amount * %(fee)s / 100, 2), interval '9 days',
                b.status IN ('completed', 'archived') AND round(b.amount * %(fee)s / 100, 2) > 0),
            (b.owner_id, 'refund', b.amount, interval '5 days', b.status = 'cancelled')
        ) AS m(user_id, type, amount, delay, applies)
        WHERE NOT b.is_for_honor AND m.applies
        """,
        {"fee": fee},
    )


def insert_deposits_withdrawals(cursor, plan: SeedPlan) -> int:
    """Fill the ledger up to plan.transactions: withdrawals first, then deposits that cover each
    user's escrows, fees and withdrawals with something to spare."""
    _sql(
        cursor,
        "SELECT count(*) FROM {wallettransaction} t JOIN seed_users u ON u.id = t.user_id",
    )
    per_user = max(1, (plan.transactions - cursor.fetchone()[0]) // plan.users)
    deposits = max(1, round(per_user * 0.6))
    withdrawals = per_user - deposits
    rows = _sql(
        cursor,
        """
        INSERT INTO {wallettransaction} (user_id, type, amount, status, description, reference,
            idempotency_key, created_at, updated_at)
        SELECT u.id, 'withdrawal', -round((10 + random() * 190)::numeric, 2), 'completed', 'Withdrawal',
               '', '', now() - random() * interval '300 days', now()
        FROM seed_users u CROSS JOIN generate_series(1, %(w)s)
        """,
        {"w": withdrawals},
    )
    rows += _sql(
        cursor,
        """
        WITH needs AS (
            SELECT u.id AS user_id, COALESCE(-sum(t.amount) FILTER (WHERE t.amount < 0), 0) AS need
            FROM seed_users u LEFT JOIN {wallettransaction} t ON t.user_id = u.id
            GROUP BY u.id
        )
        INSERT INTO {wallettransaction} (user_id, type, amount, status, description, reference,
            idempotency_key, created_at, updated_at)
        SELECT n.user_id, 'deposit', round(n.need / %(d)s + 20 + (random() * 300)::numeric, 2), 'completed',
               'Deposit', %(prefix)s || '-dep-' || n.user_id || '-' || k, '',
               now() - (365 + random() * 30) * interval '1 day', now()
        FROM needs n CROSS JOIN generate_series(1, %(d)s) AS k
        """,
        {"d": deposits, "prefix": plan.prefix},
    )
    return rows


def insert_accounts(cursor) -> int:
    return _sql(
        cursor,
        """
        INSERT INTO {walletaccount} (user_id, balance, updated_at)
        SELECT t.user_id, sum(t.amount), now()
        FROM {wallettransaction} t JOIN seed_users u ON u.id = t.user_id
        WHERE t.status = 'completed'
        GROUP BY t.user_id
        """,
    )


def insert_conversations(cursor, plan: SeedPlan) -> int:
    """Owner-hunter conversations of worked bounties first, then general 1:1 pairs."""
    cursor.execute(
        "CREATE TEMP TABLE seed_conversations (id bigint, a bigint, b bigint, started timestamptz) "
        "ON COMMIT DROP"
    )
    _sql(
        cursor,
        """
        WITH pairs AS (
            SELECT b.owner_id AS a, b.hunter_id AS b, b.id AS bounty_id, b.created_at AS started
            FROM {bounty} b JOIN seed_users o ON o.id = b.owner_id
            WHERE b.hunter_id IS NOT NULL
            ORDER BY b.id LIMIT %(count)s
        ), general AS (
            SELECT ua.id AS a, ub.id AS b, NULL::bigint AS bounty_id,
                   now() - random() * interval '200 days' AS started
            FROM generate_series(1, GREATEST(0, %(count)s - (SELECT count(*) FROM pairs))) AS j
            JOIN seed_users ua ON ua.n = 1 + j %% %(users)s
            JOIN seed_users ub ON ub.n = 1 + (j + 1 + j / %(users)s) %% %(users)s
        ), inserted AS (
            INSERT INTO {conversation} (bounty_id, is_group, name, created_by_id, pair_key,
                created_at, updated_at, last_message_preview)
            SELECT bounty_id, false, '', a, least(a, b) || ':' || greatest(a, b), started, started, ''
            FROM (SELECT * FROM pairs UNION ALL SELECT * FROM general) AS all_pairs
            WHERE a <> b
            ON CONFLICT DO NOTHING
            RETURNING id, created_by_id, pair_key, created_at
        )
        INSERT INTO seed_conversations (id, a, b, started)
        SELECT id, created_by_id,
               CASE WHEN split_part(pair_key, ':', 1)::bigint = created_by_id
                    THEN split_part(pair_key, ':', 2)::bigint ELSE split_part(pair_key, ':', 1)::bigint END,
               created_at
        FROM inserted
        """,
        {"count": plan.conversations, "users": plan.users},
    )
    conversations = cursor.rowcount
    _sql(
        cursor,
        """
        INSERT INTO {participant} (conversation_id, user_id, joined_at)
        SELECT c.id, m.member, c.started FROM seed_conversations c, LATERAL (VALUES (c.a), (c.b)) AS m(member)
        """,
    )
    return conversations


def insert_messages(cursor, plan: SeedPlan) -> int:
    """About plan.messages messages: 1 to 2x the average per conversation, senders alternating."""
    cursor.execute("SELECT count(*) FROM seed_conversations")
    conversations = max(1, cursor.fetchone()[0])
    average = max(1, plan.messages // conversations)
    return _sql(
        cursor,
        """
        INSERT INTO {message} (conversation_id, sender_id, text, created_at)
        SELECT c.id, CASE WHEN m %% 2 = 1 THEN c.a ELSE c.b END,
               (%(lines)s::text[])[1 + (m + c.id) %% %(n)s], c.started + m * interval '37 minutes'
        FROM (SELECT *, 1 + floor(random() * (2 * %(avg)s - 1))::int AS count FROM seed_conversations) AS c
        CROSS JOIN LATERAL generate_series(1, c.count) AS m
        """,
        {"lines": MESSAGE_LINES, "n": len(MESSAGE_LINES), "avg": average},
    )


def update_last_messages(cursor) -> int:
    rows = _sql(
        cursor,
        """
        UPDATE {conversation} c
        SET updated_at = l.created_at, last_message_at = l.created_at,
            last_message_preview = left(l.text, 200), last_message_sender_id = l.sender_id
        FROM (
            SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.created_at, m.text, m.sender_id
            FROM {message} m JOIN seed_conversations s ON s.id = m.conversation_id
            ORDER BY m.conversation_id, m.created_at DESC
        ) AS l
        WHERE c.id = l.conversation_id
        """,
    )
    # Most participants have read everything; some are behind.
    _sql(
        cursor,
        """
        UPDATE {participant} p
        SET last_read_at = c.last_message_at - (random() < 0.3)::int * interval '1 day'
        FROM {conversation} c JOIN seed_conversations s ON s.id = c.id
        WHERE p.conversation_id = c.id
        """,
    )
    return rows


def analyze(cursor) -> int:
    _sql(
        cursor,
        "ANALYZE {user}, {bounty}, {bountyrequest}, {walletaccount}, "
        "{wallettransaction}, {conversation}, {participant}, {message}",
    )
    return 0

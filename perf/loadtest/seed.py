"""A realistic marketplace at scale, generated inside PostgreSQL with set-based SQL.

Every step is one INSERT ... SELECT (or COPY) in a single session, so the default size loads in
minutes on two cores. Randomness comes from PostgreSQL's random() after setseed(), with
parallel workers off, so the same --seed gives the same data.

The ledger is built to keep every wallet invariant: each user's rows are their escrows,
releases, fees and refunds, plus deposits sized to cover their escrows and withdrawals; the
wallet balances are then the per-user sums. check_ledger passes by construction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuthToken, User
from accounts.tokens import hash_token
from bounties.models import Bounty

SEED_USER_PASSWORD = "seed-password-2026"  # noqa: S105 (generated load-test users; documented)
TOKENS_FILE = Path(settings.BASE_DIR) / ".local" / "loadtest" / "tokens.txt"

# Vocabulary: category -> (topics, deliverables). Titles and descriptions are drawn from these,
# so a search for web, mobile, design, data or test finds ranked results.
VOCABULARY = {
    "web": (["web", "website", "react", "django", "wordpress", "shopify", "landing page", "web app"],
            ["page", "site", "plugin", "checkout", "dashboard", "API"]),
    "mobile": (["mobile", "android", "ios", "flutter", "kotlin", "swift", "react native"],
               ["app", "screen", "release", "crash fix", "push notifications"]),
    "design": (["design", "logo", "branding", "figma", "illustration", "ux", "ui"],
               ["mockup", "logo", "style guide", "prototype", "poster"]),
    "data": (["data", "excel", "sql", "pandas", "tableau", "etl", "spreadsheet", "analytics"],
             ["report", "pipeline", "cleanup", "model", "chart"]),
    "testing": (["test", "testing", "qa", "selenium", "pytest", "cypress", "load test"],
                ["test suite", "test plan", "bug report", "regression tests"]),
    "writing": (["writing", "copywriting", "translation", "proofreading", "blog"],
                ["article", "translation", "product copy", "newsletter"]),
    "marketing": (["marketing", "seo", "social media", "ads", "email"],
                  ["campaign", "audit", "strategy", "calendar"]),
    "errands": (["moving", "delivery", "cleaning", "assembly", "gardening"],
                ["help", "pickup", "job", "visit"]),
}  # fmt: skip
CLIENTS = ["a bakery", "a startup", "a school", "a clinic", "a shop", "an NGO"]
VERBS = ["Build", "Fix", "Design", "Create", "Improve", "Set up", "Review", "Migrate", "Write", "Test"]
SENTENCES = [
    "We are a small team and need someone reliable.",
    "The scope is described below; ask questions before you start.",
    "Please share similar work you have done.",
    "Deliver in small steps so we can give feedback early.",
    "Documentation and a short handover call are part of the job.",
    "Budget is fixed; a bonus is possible for early delivery.",
    "Remote is fine; we are flexible on hours.",
    "Quality matters more than speed here.",
]
CITIES = ["Lyon", "Lagos", "Toronto", "Berlin", "Austin", "Nairobi", "Lisbon", "Osaka", "Lima", "Pune"]
MESSAGE_LINES = [
    "Hi! Is this still available?",
    "Yes, when can you start?",
    "I can start tomorrow morning.",
    "Great, I sent you the details.",
    "First version is ready for review.",
    "Looks good, a few small changes.",
    "Done, please have a look.",
    "Thanks, approving now.",
    "Could you clarify the deadline?",
    "Friday end of day works.",
]


@dataclass
class SeedPlan:
    users: int = 10_000
    bounties: int = 100_000
    transactions: int = 1_000_000
    messages: int = 1_000_000
    conversations: int = 50_000
    tokens: int = 2_000
    seed: int = 42
    prefix: str = "seed"
    tokens_file: Path = TOKENS_FILE


@dataclass
class SeedReport:
    steps: list[tuple[str, int, float]] = field(default_factory=list)  # (step, rows, seconds)
    tokens_file: Path | None = None

    @property
    def seconds(self) -> float:
        return sum(seconds for _, _, seconds in self.steps)


class DatabaseNotEmpty(Exception):
    """Raised when seeding would mix with existing data and neither append nor reset was asked."""


def database_has_data() -> bool:
    return Bounty.all_objects.exists() or User.objects.filter(is_staff=False).exists()


def reset_marketplace() -> None:
    """Remove all marketplace data and every non-staff user (staff accounts stay)."""
    tables = [
        "messaging_message",
        "messaging_participant",
        "messaging_conversation",
        "wallet_wallettransaction",
        "wallet_walletaccount",
        "bounties_bountyrequest",
        "bounties_bounty",
        "core_idempotencyrecord",
        "accounts_authtoken",
    ]
    with connection.cursor() as cursor:
        # Deferred foreign-key checks still pending in this transaction would block TRUNCATE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    User.objects.filter(is_staff=False).delete()


def _sql(cursor, statement: str, params: dict | None = None) -> int:
    cursor.execute(statement, params or {})
    return cursor.rowcount


def seed_marketplace(*, plan: SeedPlan, append: bool = False, reset: bool = False,
                     progress: Callable[[str], None] = print) -> SeedReport:  # fmt: skip
    """Generate the dataset described by ``plan``; see the module docstring."""
    if reset:
        reset_marketplace()
    elif database_has_data() and not append:
        raise DatabaseNotEmpty()
    report = SeedReport()

    def step(name: str, run: Callable[[], int]) -> None:
        started = time.perf_counter()
        rows = run()
        seconds = time.perf_counter() - started
        report.steps.append((name, rows, seconds))
        progress(f"  {name:<34} {rows:>10,} rows  {seconds:6.1f} s")

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cursor.execute("SELECT setseed(%s)", [(plan.seed % 1000) / 1000])
        cursor.execute("CREATE TEMP TABLE seed_users (n int PRIMARY KEY, id bigint) ON COMMIT DROP")
        step("users", lambda: _insert_users(cursor, plan))
        step("bounties", lambda: _insert_bounties(cursor, plan))
        step("applications", lambda: _insert_applications(cursor))
        step("ledger: escrow, release, fee, refund", lambda: _insert_bounty_money(cursor))
        step("ledger: deposits and withdrawals", lambda: _insert_deposits_withdrawals(cursor, plan))
        step("wallet balances", lambda: _insert_accounts(cursor))
        step("conversations and participants", lambda: _insert_conversations(cursor, plan))
        step("messages", lambda: _insert_messages(cursor, plan))
        step("last message of each conversation", lambda: _update_last_messages(cursor))
        step("analyze", lambda: _analyze(cursor))
        # ON COMMIT DROP covers a normal run; an enclosing transaction (tests) needs this.
        cursor.execute("DROP TABLE seed_users, seed_conversations")
    report.tokens_file = plan.tokens_file
    step("login tokens for load tests", lambda: _issue_tokens(plan))
    return report


def _insert_users(cursor, plan: SeedPlan) -> int:
    password = make_password(SEED_USER_PASSWORD)
    rows = _sql(
        cursor,
        """
        INSERT INTO accounts_user (username, email, password, first_name, last_name, is_superuser,
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
    cursor.execute(
        "INSERT INTO seed_users (n, id) SELECT substr(username, %(offset)s)::int, id FROM accounts_user "
        "WHERE username ~ %(pattern)s",
        {"offset": len(plan.prefix) + 1, "pattern": f"^{plan.prefix}[0-9]+$"},
    )
    return rows


def _insert_bounties(cursor, plan: SeedPlan) -> int:
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
        INSERT INTO bounties_bounty (owner_id, title, description, amount, is_for_honor, category, location,
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


def _insert_applications(cursor) -> int:
    """The accepted application of every worked bounty, a rejected rival on a third of them,
    and one pending application on half the open bounties (about two per user)."""
    return _sql(
        cursor,
        """
        WITH candidates AS (
            SELECT b.id AS bounty_id, b.hunter_id, 'accepted' AS status, b.created_at
            FROM bounties_bounty b JOIN seed_users o ON o.id = b.owner_id WHERE b.hunter_id IS NOT NULL
            UNION ALL
            SELECT b.id, u.id, CASE WHEN b.status = 'open' THEN 'pending' ELSE 'rejected' END, b.created_at
            FROM bounties_bounty b JOIN seed_users o ON o.id = b.owner_id
            JOIN seed_users u ON u.n = 1 + (b.id * 7919) %% (SELECT count(*) FROM seed_users)
            WHERE ((b.status = 'open' AND b.id %% 2 = 0) OR (b.hunter_id IS NOT NULL AND b.id %% 3 = 0))
              AND u.id <> b.owner_id AND u.id IS DISTINCT FROM b.hunter_id
        )
        INSERT INTO bounties_bountyrequest (bounty_id, hunter_id, message, status, created_at, updated_at)
        SELECT bounty_id, hunter_id,
               'I would like to work on this. ' || (%(sentences)s::text[])[1 + bounty_id %% %(n)s]
                   || ' I have relevant experience and can start this week.',
               status, created_at + interval '2 hours', created_at + interval '1 day'
        FROM candidates
        """,
        {"sentences": SENTENCES, "n": len(SENTENCES)},
    )


def _insert_bounty_money(cursor) -> int:
    fee = settings.PLATFORM_FEE_PERCENT
    return _sql(
        cursor,
        """
        INSERT INTO wallet_wallettransaction (user_id, type, amount, bounty_id, status, description,
            reference, idempotency_key, created_at, updated_at)
        SELECT m.user_id, m.type, m.amount, b.id, 'completed', m.type || ' for bounty #' || b.id, '', '',
               b.created_at + m.delay, b.created_at + m.delay
        FROM bounties_bounty b JOIN seed_users o ON o.id = b.owner_id
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


def _insert_deposits_withdrawals(cursor, plan: SeedPlan) -> int:
    """Fill the ledger up to plan.transactions: withdrawals first, then deposits that cover each
    user's escrows, fees and withdrawals with something to spare."""
    cursor.execute(
        "SELECT count(*) FROM wallet_wallettransaction t JOIN seed_users u ON u.id = t.user_id",
    )
    per_user = max(1, (plan.transactions - cursor.fetchone()[0]) // plan.users)
    deposits = max(1, round(per_user * 0.6))
    withdrawals = per_user - deposits
    rows = _sql(
        cursor,
        """
        INSERT INTO wallet_wallettransaction (user_id, type, amount, status, description, reference,
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
            FROM seed_users u LEFT JOIN wallet_wallettransaction t ON t.user_id = u.id
            GROUP BY u.id
        )
        INSERT INTO wallet_wallettransaction (user_id, type, amount, status, description, reference,
            idempotency_key, created_at, updated_at)
        SELECT n.user_id, 'deposit', round(n.need / %(d)s + 20 + (random() * 300)::numeric, 2), 'completed',
               'Deposit', %(prefix)s || '-dep-' || n.user_id || '-' || k, '',
               now() - (365 + random() * 30) * interval '1 day', now()
        FROM needs n CROSS JOIN generate_series(1, %(d)s) AS k
        """,
        {"d": deposits, "prefix": plan.prefix},
    )
    return rows


def _insert_accounts(cursor) -> int:
    return _sql(
        cursor,
        """
        INSERT INTO wallet_walletaccount (user_id, balance, updated_at)
        SELECT t.user_id, sum(t.amount), now()
        FROM wallet_wallettransaction t JOIN seed_users u ON u.id = t.user_id
        WHERE t.status = 'completed'
        GROUP BY t.user_id
        """,
    )


def _insert_conversations(cursor, plan: SeedPlan) -> int:
    """Owner-hunter conversations of worked bounties first, then general 1:1 pairs."""
    cursor.execute(
        "CREATE TEMP TABLE seed_conversations (id bigint, a bigint, b bigint, started timestamptz) "
        "ON COMMIT DROP"
    )
    cursor.execute(
        """
        WITH pairs AS (
            SELECT b.owner_id AS a, b.hunter_id AS b, b.id AS bounty_id, b.created_at AS started
            FROM bounties_bounty b JOIN seed_users o ON o.id = b.owner_id
            WHERE b.hunter_id IS NOT NULL
            ORDER BY b.id LIMIT %(count)s
        ), general AS (
            SELECT ua.id AS a, ub.id AS b, NULL::bigint AS bounty_id,
                   now() - random() * interval '200 days' AS started
            FROM generate_series(1, GREATEST(0, %(count)s - (SELECT count(*) FROM pairs))) AS j
            JOIN seed_users ua ON ua.n = 1 + j %% %(users)s
            JOIN seed_users ub ON ub.n = 1 + (j + 1 + j / %(users)s) %% %(users)s
        ), inserted AS (
            INSERT INTO messaging_conversation (bounty_id, is_group, name, created_by_id, pair_key,
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
        INSERT INTO messaging_participant (conversation_id, user_id, joined_at)
        SELECT c.id, m.member, c.started FROM seed_conversations c, LATERAL (VALUES (c.a), (c.b)) AS m(member)
        """,
    )
    return conversations


def _insert_messages(cursor, plan: SeedPlan) -> int:
    """About plan.messages messages: 1 to 2x the average per conversation, senders alternating."""
    cursor.execute("SELECT count(*) FROM seed_conversations")
    conversations = max(1, cursor.fetchone()[0])
    average = max(1, plan.messages // conversations)
    return _sql(
        cursor,
        """
        INSERT INTO messaging_message (conversation_id, sender_id, text, created_at)
        SELECT c.id, CASE WHEN m %% 2 = 1 THEN c.a ELSE c.b END,
               (%(lines)s::text[])[1 + (m + c.id) %% %(n)s], c.started + m * interval '37 minutes'
        FROM (SELECT *, 1 + floor(random() * (2 * %(avg)s - 1))::int AS count FROM seed_conversations) AS c
        CROSS JOIN LATERAL generate_series(1, c.count) AS m
        """,
        {"lines": MESSAGE_LINES, "n": len(MESSAGE_LINES), "avg": average},
    )


def _update_last_messages(cursor) -> int:
    rows = _sql(
        cursor,
        """
        UPDATE messaging_conversation c
        SET updated_at = l.created_at, last_message_at = l.created_at,
            last_message_preview = left(l.text, 200), last_message_sender_id = l.sender_id
        FROM (
            SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.created_at, m.text, m.sender_id
            FROM messaging_message m JOIN seed_conversations s ON s.id = m.conversation_id
            ORDER BY m.conversation_id, m.created_at DESC
        ) AS l
        WHERE c.id = l.conversation_id
        """,
    )
    # Most participants have read everything; some are behind.
    _sql(
        cursor,
        """
        UPDATE messaging_participant p
        SET last_read_at = c.last_message_at - (random() < 0.3)::int * interval '1 day'
        FROM messaging_conversation c JOIN seed_conversations s ON s.id = c.id
        WHERE p.conversation_id = c.id
        """,
    )
    return rows


def _analyze(cursor) -> int:
    cursor.execute(
        "ANALYZE accounts_user, bounties_bounty, bounties_bountyrequest, wallet_walletaccount, "
        "wallet_wallettransaction, messaging_conversation, messaging_participant, messaging_message"
    )
    return 0


def _issue_tokens(plan: SeedPlan) -> int:
    """Bearer tokens for the first plan.tokens seeded users, written (raw) to plan.tokens_file so the
    load test can act as many distinct users. Only hashes are stored in the database."""
    users = list(
        User.objects.filter(username__regex=rf"^{plan.prefix}[0-9]+$")
        .order_by("pk")
        .values_list("pk", flat=True)
    )[: plan.tokens]
    expires = timezone.now() + timedelta(days=settings.AUTH_TOKEN_TTL_DAYS)
    raw = {user_id: secrets.token_urlsafe(32) for user_id in users}
    AuthToken.objects.bulk_create(
        [
            AuthToken(key_hash=hash_token(token), user_id=uid, expires_at=expires)
            for uid, token in raw.items()
        ],
        batch_size=5000,
    )
    plan.tokens_file.parent.mkdir(parents=True, exist_ok=True)
    plan.tokens_file.write_text("".join(f"{uid} {token}\n" for uid, token in raw.items()))
    plan.tokens_file.chmod(0o600)
    return len(raw)

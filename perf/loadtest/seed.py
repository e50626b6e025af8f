"""A realistic marketplace at scale, generated inside PostgreSQL with set-based SQL.

Every step is one INSERT ... SELECT (or COPY) in a single session, so the default size loads in
minutes on two cores. Randomness comes from PostgreSQL's random() after setseed(), with
parallel workers off, so the same --seed gives the same data.

The ledger is built to keep every wallet invariant: each user's rows are their escrows,
releases, fees and refunds, plus deposits sized to cover their escrows and withdrawals; the
wallet balances are then the per-user sums. check_ledger passes by construction.

This module is the plan and its order; the SQL of each step is in perf/loadtest/seed_steps.py
and the words it draws from in perf/loadtest/vocabulary.py.
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
from bounties.models import Bounty, BountyRequest
from core.models import IdempotencyRecord
from messaging.models import Conversation, Message, Participant
from perf.loadtest import seed_steps as steps
from wallet.models import WalletAccount, WalletTransaction

SEED_USER_PASSWORD = "seed-password-2026"  # noqa: S105 (generated load-test users; documented)
TOKENS_FILE = Path(settings.BASE_DIR) / ".local" / "loadtest" / "tokens.txt"

# What --reset empties, children before parents (users go through the ORM: staff stay).
MARKETPLACE_MODELS = (Message, Participant, Conversation, WalletTransaction, WalletAccount, BountyRequest,
                      Bounty, IdempotencyRecord, AuthToken)  # fmt: skip


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
    tables = [model._meta.db_table for model in MARKETPLACE_MODELS]
    with connection.cursor() as cursor:
        # Deferred foreign-key checks still pending in this transaction would block TRUNCATE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    User.objects.filter(is_staff=False).delete()


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
        password = make_password(SEED_USER_PASSWORD)
        step("users", lambda: steps.insert_users(cursor, plan, password=password))
        step("bounties", lambda: steps.insert_bounties(cursor, plan))
        step("applications", lambda: steps.insert_applications(cursor))
        step("ledger: escrow, release, fee, refund", lambda: steps.insert_bounty_money(cursor))
        step("ledger: deposits and withdrawals", lambda: steps.insert_deposits_withdrawals(cursor, plan))
        step("wallet balances", lambda: steps.insert_accounts(cursor))
        step("conversations and participants", lambda: steps.insert_conversations(cursor, plan))
        step("messages", lambda: steps.insert_messages(cursor, plan))
        step("last message of each conversation", lambda: steps.update_last_messages(cursor))
        step("analyze", lambda: steps.analyze(cursor))
        # ON COMMIT DROP covers a normal run; an enclosing transaction (tests) needs this.
        cursor.execute("DROP TABLE seed_users, seed_conversations")
    report.tokens_file = plan.tokens_file
    step("login tokens for load tests", lambda: _issue_tokens(plan))
    return report


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

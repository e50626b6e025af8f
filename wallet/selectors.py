"""Reads of wallets and the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet, Sum

from wallet.models import (
    LedgerCheckRun,
    TransactionStatus,
    TransactionType,
    WalletAccount,
    WalletTransaction,
)

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class WalletSummary:
    balance: Decimal  # what the user owns: available plus held in escrow
    pending: Decimal  # held in escrow on their bounties, until released or refunded
    available: Decimal  # spendable now: withdrawals and new escrows draw on this


# The wallet summary, read on every wallet screen: one statement written out, because the ORM
# spent 0.93 ms of CPU compiling the two queries it took (an account's balance; the escrows not
# yet settled, an EXISTS on the ledger), against 0.07 ms to run this one (1,000 calls each,
# in-process, on seed_data's ledger). The statement is the two queries the ORM built, as
# subqueries: the same plans and indexes, on the primary like every wallet read (the default
# connection; core.db.replicas.PRIMARY_APPS). Table names come from the models, values are parameters.
_SUMMARY_SQL = f"""
SELECT
    (SELECT balance FROM {WalletAccount._meta.db_table} WHERE user_id = %(user)s),
    (SELECT sum(held.amount) FROM {WalletTransaction._meta.db_table} held
     WHERE held.user_id = %(user)s AND held.type = %(escrow)s
       AND NOT EXISTS (
           SELECT 1 FROM {WalletTransaction._meta.db_table} settled
           WHERE settled.bounty_id = held.bounty_id AND settled.type IN (%(release)s, %(refund)s)
       ))
"""  # noqa: S608


def wallet_summary(*, user_id: int) -> WalletSummary:
    """The caller's balance figures, in one statement (see _SUMMARY_SQL)."""
    params = {
        "user": user_id,
        "escrow": TransactionType.ESCROW.value,
        "release": TransactionType.RELEASE.value,
        "refund": TransactionType.REFUND.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_SUMMARY_SQL, params)
        available, held = cursor.fetchone()
    available = ZERO if available is None else available
    pending = -(held or ZERO)
    return WalletSummary(balance=available + pending, pending=pending, available=available)


LIST_FIELDS = ("id", "type", "amount", "status", "bounty_id", "description", "created_at")


def total_earned(*, user_id: int) -> Decimal:
    """What a hunter was paid for completed bounties, net of the platform's fee: a release
    credits the gross amount and its fee row debits the platform's share (wallettx_user_type_idx)."""
    earned = WalletTransaction.objects.filter(
        user_id=user_id,
        type__in=[TransactionType.RELEASE, TransactionType.FEE],
        status=TransactionStatus.COMPLETED,
    ).aggregate(total=Sum("amount"))["total"]
    return earned or ZERO


def transactions_for(*, user_id: int, type: str | None = None) -> QuerySet[WalletTransaction]:
    """A user's ledger, slim rows, newest first (wallettx_user_created_idx / _type_idx)."""
    queryset = WalletTransaction.objects.filter(user_id=user_id).only(*LIST_FIELDS)
    if type:
        queryset = queryset.filter(type=type)
    return queryset


@dataclass(frozen=True)
class LedgerReport:
    users_checked: int
    mismatched_users: list[tuple[int, Decimal, Decimal]]  # (user id, balance, ledger sum)
    total_balances: Decimal
    total_fees: Decimal
    total_escrow_held: Decimal
    total_deposits: Decimal
    total_withdrawals: Decimal

    @property
    def totals_ok(self) -> bool:
        held = self.total_balances + self.total_fees + self.total_escrow_held
        return self.total_escrow_held >= 0 and held == self.total_deposits - self.total_withdrawals

    @property
    def ok(self) -> bool:
        return not self.mismatched_users and self.totals_ok


def ledger_check() -> LedgerReport:
    """Verify every wallet invariant over the whole database, in two aggregate queries.

    Per user: balance == sum of completed ledger rows (a user with rows but no account counts
    as balance 0). Globally: balances + fees + escrow still held == deposits - withdrawals;
    with no bounty in escrow this is SPEC's "balances + fees == deposits - withdrawals".
    """
    account_table = WalletAccount._meta.db_table
    tx_table = WalletTransaction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH ledger AS (
                SELECT user_id, SUM(amount) AS total FROM {tx_table}
                WHERE status = %s GROUP BY user_id
            )
            SELECT COALESCE(a.user_id, l.user_id), COALESCE(a.balance, 0), COALESCE(l.total, 0)
            FROM {account_table} a FULL OUTER JOIN ledger l ON l.user_id = a.user_id
            """,  # noqa: S608 (table names come from model metadata)
            [TransactionStatus.COMPLETED],
        )
        rows = cursor.fetchall()
    mismatched = sorted((user_id, balance, total) for user_id, balance, total in rows if balance != total)
    totals = WalletTransaction.objects.filter(status=TransactionStatus.COMPLETED).aggregate(
        fees=Sum("amount", filter=Q(type=TransactionType.FEE)),
        escrowed=Sum("amount", filter=Q(type=TransactionType.ESCROW)),
        settled=Sum("amount", filter=Q(type__in=[TransactionType.RELEASE, TransactionType.REFUND])),
        deposits=Sum("amount", filter=Q(type=TransactionType.DEPOSIT)),
        withdrawals=Sum("amount", filter=Q(type=TransactionType.WITHDRAWAL)),
    )
    return LedgerReport(
        users_checked=len(rows),
        mismatched_users=mismatched,
        total_balances=WalletAccount.objects.aggregate(total=Sum("balance"))["total"] or ZERO,
        total_fees=-(totals["fees"] or ZERO),
        total_escrow_held=-(totals["escrowed"] or ZERO) - (totals["settled"] or ZERO),
        total_deposits=totals["deposits"] or ZERO,
        total_withdrawals=-(totals["withdrawals"] or ZERO),
    )


def last_ledger_check() -> LedgerCheckRun | None:
    """The most recent recorded ledger check, whoever ran it (ledgercheck_started_idx)."""
    return LedgerCheckRun.objects.order_by("-started_at").first()

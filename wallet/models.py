from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

# The smallest withdrawal (wallet.services).
MIN_WITHDRAWAL = Decimal("10.00")


class WalletAccount(models.Model):
    """A user's spendable balance; always the sum of their completed ledger rows."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, primary_key=True, related_name="wallet"
    )
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"wallet of user {self.user_id}: {self.balance}"


class TransactionType(models.TextChoices):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    ESCROW = "escrow"
    RELEASE = "release"
    REFUND = "refund"
    FEE = "fee"


CREDIT_TYPES = (TransactionType.DEPOSIT, TransactionType.RELEASE, TransactionType.REFUND)
DEBIT_TYPES = (TransactionType.WITHDRAWAL, TransactionType.ESCROW, TransactionType.FEE)


class TransactionStatus(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class WalletTransaction(models.Model):
    """One row of the ledger. Amounts are signed: credits positive, debits negative.

    Rows are never updated once completed; a correction is a new row.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet_transactions", db_index=False
    )
    type = models.CharField(max_length=20, choices=TransactionType.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    # Bounties are never removed from the database (DELETE hides them), so the link stays.
    bounty = models.ForeignKey(
        "bounties.Bounty",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="wallet_transactions",
        db_index=False,
    )
    status = models.CharField(
        max_length=20, choices=TransactionStatus.choices, default=TransactionStatus.COMPLETED
    )
    description = models.CharField(max_length=255, blank=True)
    # The payment provider's reference of a deposit; a replayed reference never credits twice.
    reference = models.CharField(max_length=100, blank=True)
    # The Idempotency-Key a deposit or withdrawal came with (core.idempotency). Unique per user,
    # so the ledger itself never applies one key twice, also after purge_idempotency_keys has
    # dropped the stored response; the admin searches it to find a client's retry.
    idempotency_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # guide: wallet_transactions(user); a user's ledger, newest first
            models.Index(fields=["user", "-created_at"], name="wallettx_user_created_idx"),
            # a user's ledger filtered by type
            models.Index(fields=["user", "type", "-created_at"], name="wallettx_user_type_idx"),
            # guide: wallet_transactions(bounty); the money of one bounty
            models.Index(fields=["bounty"], name="wallettx_bounty_idx", condition=Q(bounty__isnull=False)),
            # guide: wallet_transactions(created_at desc); recent activity, admin
            models.Index(fields=["-created_at"], name="wallettx_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=CREDIT_TYPES, amount__gt=0) | Q(type__in=DEBIT_TYPES, amount__lt=0),
                name="wallettx_sign_matches_type",
            ),
            models.UniqueConstraint(
                fields=["bounty"],
                condition=Q(type=TransactionType.ESCROW),
                name="wallettx_one_escrow_per_bounty",
            ),
            models.UniqueConstraint(
                fields=["bounty"],
                condition=Q(type__in=[TransactionType.RELEASE, TransactionType.REFUND]),
                name="wallettx_one_settlement_per_bounty",
            ),
            models.UniqueConstraint(
                fields=["bounty"], condition=Q(type=TransactionType.FEE), name="wallettx_one_fee_per_bounty"
            ),
            models.UniqueConstraint(
                fields=["reference"],
                condition=Q(type=TransactionType.DEPOSIT),
                name="wallettx_deposit_reference_uniq",
            ),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="wallettx_one_movement_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.amount} for user {self.user_id}"


class LedgerCheckRun(models.Model):
    """One run of the ledger check (``manage.py check_ledger`` or the admin action) and what it
    found, so "when was the ledger last verified, and was it whole" has an answer."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    users_checked = models.PositiveIntegerField()
    # How many users' balances differed from their ledger sum (the command's output names them).
    mismatched_users = models.PositiveIntegerField()
    # The report's totals as decimal strings (money is never a float), plus totals_ok.
    totals = models.JSONField(default=dict)
    # "command", or "admin:<username>" for the admin action.
    triggered_by = models.CharField(max_length=160)

    class Meta:
        indexes = [
            # last_ledger_check() and the admin list: newest run first
            models.Index(fields=["-started_at"], name="ledgercheck_started_idx"),
        ]

    def __str__(self) -> str:
        return f"ledger check {self.started_at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else 'broken'}"

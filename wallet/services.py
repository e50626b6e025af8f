"""Money movements. Each is one transaction that locks the accounts it touches.

Locking rules, so concurrent movements never deadlock or lose an update:
- a caller that also locks a bounty locks it first (bounties.services does);
- accounts are locked with select_for_update in primary-key order;
- balances change only through F() expressions, never read-add-write in Python;
- the database backs every rule: balance >= 0, one escrow and one settlement per bounty.

Caches: nothing of the wallet is cached (balances, the ledger and the owner's profile summary
are read from PostgreSQL each time). Escrow moves come with a bounty status change, whose save
invalidates the bounty's cached pages (bounties/caching.py).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.idempotency import IdempotencyKeyReused
from wallet.errors import (
    DuplicateDepositReference,
    EscrowAlreadySettled,
    InsufficientFunds,
    WithdrawalTooSmall,
)
from wallet.models import MIN_WITHDRAWAL, LedgerCheckRun, TransactionType, WalletAccount, WalletTransaction
from wallet.selectors import ZERO, LedgerReport, ledger_check

CENT = Decimal("0.01")


def platform_fee(amount: Decimal) -> Decimal:
    """The platform's share of a released escrow, rounded half-up to the cent."""
    return (amount * settings.PLATFORM_FEE_PERCENT / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _lock_accounts(*user_ids: int) -> dict[int, WalletAccount]:
    """Lock the accounts in primary-key order; missing ones are created first, then locked.
    Accounts almost always exist, so the insert runs only when one is missing (a statement
    less on every money movement)."""
    ids = sorted(set(user_ids))
    accounts = _select_locked(ids)
    if len(accounts) < len(ids):
        WalletAccount.objects.bulk_create(
            [WalletAccount(user_id=user_id) for user_id in ids if user_id not in accounts],
            ignore_conflicts=True,
        )
        accounts = _select_locked(ids)
    return accounts


def _select_locked(ids: list[int]) -> dict[int, WalletAccount]:
    accounts = WalletAccount.objects.select_for_update().filter(user_id__in=ids).order_by("user_id")
    return {account.user_id: account for account in accounts}


def _move(*, user_id: int, type: str, amount: Decimal, **fields) -> WalletTransaction:
    """Record a completed ledger row and apply it to the (already locked) account."""
    WalletAccount.objects.filter(user_id=user_id).update(balance=F("balance") + amount)
    return WalletTransaction.objects.create(user_id=user_id, type=type, amount=amount, **fields)


def _constraint(error: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError broke (psycopg's diagnostics)."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)


def _record(*, idempotency_key: str, **move) -> WalletTransaction:
    """_move for a client's deposit or withdrawal: the Idempotency-Key is recorded with the row,
    and a key this user already spent on another movement is refused (IdempotencyKeyReused)."""
    try:
        with transaction.atomic():
            return _move(idempotency_key=idempotency_key, **move)
    except IntegrityError as error:
        if _constraint(error) == "wallettx_one_movement_per_key":
            raise IdempotencyKeyReused() from None
        raise


@transaction.atomic
def deposit_create(
    *, user_id: int, amount: Decimal, reference: str, idempotency_key: str = ""
) -> WalletTransaction:
    """Credit a deposit confirmed by the payment provider under ``reference`` (unique)."""
    _lock_accounts(user_id)
    try:
        return _record(
            user_id=user_id,
            type=TransactionType.DEPOSIT,
            amount=amount,
            reference=reference,
            description=f"Deposit {reference}",
            idempotency_key=idempotency_key,
        )
    except IntegrityError as error:
        if _constraint(error) != "wallettx_deposit_reference_uniq":
            raise
        raise DuplicateDepositReference(
            fields={"reference": [DuplicateDepositReference.default_detail]}
        ) from None


@transaction.atomic
def withdrawal_create(*, user_id: int, amount: Decimal, idempotency_key: str = "") -> WalletTransaction:
    """Debit a withdrawal at once; paying out to a bank is outside this API."""
    if amount < MIN_WITHDRAWAL:
        raise WithdrawalTooSmall(fields={"amount": [WithdrawalTooSmall.default_detail]})
    account = _lock_accounts(user_id)[user_id]
    if account.balance < amount:
        raise InsufficientFunds()
    return _record(
        user_id=user_id,
        type=TransactionType.WITHDRAWAL,
        amount=-amount,
        description="Withdrawal",
        idempotency_key=idempotency_key,
    )


def _require_transaction() -> None:
    """The escrow functions change a bounty's money together with its status: outside the
    bounty's transaction (and its row lock) a failure between the two would split them."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("escrow functions run inside the bounty's transaction (bounties.services)")


def escrow_hold(*, bounty, owner_id: int) -> WalletTransaction:
    """Take a new paid bounty's amount from its owner. Runs inside the bounty's transaction.

    The debit is one conditional UPDATE (balance covers the amount): it locks the account row
    itself, and a concurrent movement that committed first is re-checked by PostgreSQL before
    it applies (READ COMMITTED re-evaluates the WHERE on the newest row version), so no
    balance goes below zero. Locking the row first (_lock_accounts) cost a statement more on
    every post, the write the marketplace makes most."""
    _require_transaction()
    debited = WalletAccount.objects.filter(user_id=owner_id, balance__gte=bounty.amount).update(
        balance=F("balance") - bounty.amount
    )
    if not debited:  # no account (nothing deposited yet), or not enough in it
        balance = WalletAccount.objects.filter(user_id=owner_id).values_list("balance", flat=True).first()
        raise InsufficientFunds(
            f"This bounty needs {bounty.amount} in escrow; your available balance is {balance or ZERO}."
        )
    return WalletTransaction.objects.create(
        user_id=owner_id,
        type=TransactionType.ESCROW,
        amount=-bounty.amount,
        bounty=bounty,
        description=f"Escrow for bounty #{bounty.pk} {bounty.title[:80]}",
    )


def _held_escrow(bounty) -> WalletTransaction | None:
    return WalletTransaction.objects.filter(bounty=bounty, type=TransactionType.ESCROW).first()


def _settle(*, bounty, user_id: int, moves: list[tuple[str, Decimal, str]]) -> list[WalletTransaction]:
    """Settle a bounty's escrow: record ``moves`` (type, amount, description) on ``user_id``'s
    account. A second settlement of the same bounty breaks wallettx_one_settlement_per_bounty
    and raises EscrowAlreadySettled, with nothing of it applied."""
    _lock_accounts(user_id)
    try:
        with transaction.atomic():
            return [
                _move(user_id=user_id, type=type, amount=amount, bounty=bounty, description=description)
                for type, amount, description in moves
            ]
    except IntegrityError:
        raise EscrowAlreadySettled() from None


def escrow_release(*, bounty, hunter_id: int) -> tuple[WalletTransaction | None, WalletTransaction | None]:
    """Pay a completed bounty's escrow to its hunter, minus the platform fee (a fee row).

    The caller holds the bounty's row lock. Returns the release row and the fee row (None when
    the fee rounds to zero). Nothing happens for a bounty without escrow (for honor).
    """
    _require_transaction()
    escrow = _held_escrow(bounty)
    if escrow is None:
        return None, None
    gross = -escrow.amount
    fee = platform_fee(gross)
    moves = [(TransactionType.RELEASE, gross, f"Payment for bounty #{bounty.pk} {bounty.title[:80]}")]
    if fee > 0:
        percent = settings.PLATFORM_FEE_PERCENT
        moves.append((TransactionType.FEE, -fee, f"Platform fee {percent}% on bounty #{bounty.pk}"))
    release, *fee_row = _settle(bounty=bounty, user_id=hunter_id, moves=moves)
    return release, (fee_row[0] if fee_row else None)


def escrow_refund(*, bounty, owner_id: int) -> WalletTransaction | None:
    """Return a cancelled or deleted bounty's escrow to its owner; None without escrow.

    The caller holds the bounty's row lock.
    """
    _require_transaction()
    escrow = _held_escrow(bounty)
    if escrow is None:
        return None
    description = f"Refund for bounty #{bounty.pk} {bounty.title[:80]}"
    moves = [(TransactionType.REFUND, -escrow.amount, description)]
    (refund,) = _settle(bounty=bounty, user_id=owner_id, moves=moves)
    return refund


@transaction.atomic
def ledger_check_run(*, triggered_by: str) -> tuple[LedgerReport, LedgerCheckRun]:
    """Check the whole ledger (selectors.ledger_check) and record the run as a LedgerCheckRun.

    ``triggered_by`` is "command" or "admin:<username>". A check that raises (a statement
    timeout) records nothing: it has no result to keep.
    """
    started_at = timezone.now()
    report = ledger_check()
    run = LedgerCheckRun.objects.create(
        started_at=started_at,
        finished_at=timezone.now(),
        ok=report.ok,
        users_checked=report.users_checked,
        mismatched_users=len(report.mismatched_users),
        totals={
            "balances": str(report.total_balances),
            "fees": str(report.total_fees),
            "escrow_held": str(report.total_escrow_held),
            "deposits": str(report.total_deposits),
            "withdrawals": str(report.total_withdrawals),
            "totals_ok": report.totals_ok,
        },
        triggered_by=triggered_by,
    )
    return report, run

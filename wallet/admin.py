"""The ledger is read-only here: money moves only through wallet.services, which keep the
invariants (check_ledger verifies them, also from the wallet list's "check ledger" action)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models import DecimalField, Exists, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from wallet.models import LedgerCheckRun, TransactionType, WalletAccount, WalletTransaction
from wallet.selectors import LedgerReport
from wallet.services import ledger_check_run

# Users named in the action's message; the command lists more (manage.py check_ledger).
MAX_LISTED_USERS = 20
MONEY = DecimalField(max_digits=12, decimal_places=2)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def held_in_escrow() -> Coalesce:
    """Per account: the escrow of the user's bounties not yet released or refunded (open and
    in-progress ones), as a positive amount; the ``pending`` of selectors.wallet_summary.

    A correlated subquery in the page's one query, through wallettx_user_type_idx and the
    one-settlement-per-bounty index; PostgreSQL evaluates it for the page's rows only."""
    settled = WalletTransaction.objects.filter(
        bounty_id=OuterRef("bounty_id"), type__in=[TransactionType.RELEASE, TransactionType.REFUND]
    )
    held = (
        WalletTransaction.objects.filter(user_id=OuterRef("user_id"), type=TransactionType.ESCROW)
        .exclude(Exists(settled))
        .values("user_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(-Subquery(held, output_field=MONEY), Value(Decimal("0.00")), output_field=MONEY)


def ledger_url(user_id: int) -> str:
    """The WalletTransaction list filtered to one user's rows (wallettx_user_created_idx)."""
    return f"{reverse('admin:wallet_wallettransaction_changelist')}?user__id__exact={user_id}"


@admin.register(WalletAccount)
class WalletAccountAdmin(ReadOnlyAdmin):
    """Balances as the API shows them (GET /api/wallet): ``available`` is the stored balance
    column (spendable now), ``pending`` is held in escrow, ``balance`` is both together."""

    list_display = ("user", "total_balance", "pending", "available", "updated_at", "ledger")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    fields = ("user", "total_balance", "pending", "available", "updated_at", "ledger")
    readonly_fields = ("total_balance", "pending", "available", "ledger")
    ordering = ("-balance",)
    actions = ("check_ledger",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[WalletAccount]:
        return super().get_queryset(request).annotate(held=held_in_escrow())

    @admin.display(description="balance")
    def total_balance(self, account: WalletAccount) -> Decimal:
        return account.balance + account.held

    @admin.display(description="pending (in escrow)")
    def pending(self, account: WalletAccount) -> Decimal:
        return account.held

    @admin.display(description="available", ordering="balance")
    def available(self, account: WalletAccount) -> Decimal:
        return account.balance

    @admin.display(description="ledger")
    def ledger(self, account: WalletAccount) -> str:
        return format_html('<a href="{}">ledger rows</a>', ledger_url(account.user_id))

    @admin.action(
        description="Check the whole ledger (all users, not only the selected)", permissions=["view"]
    )
    def check_ledger(self, request: HttpRequest, queryset: QuerySet[WalletAccount] | None = None) -> None:
        """Run check_ledger over the whole database, record the run, and say what it found."""
        try:
            # A savepoint: a check cancelled by the statement timeout leaves the request's
            # connection usable for the page that reports it.
            with transaction.atomic():
                report, run = ledger_check_run(triggered_by=f"admin:{request.user.get_username()}")
        except DatabaseError as exc:
            self.message_user(
                request,
                f"The ledger check did not finish ({exc}). Run `manage.py check_ledger`, which has a "
                "longer statement timeout.",
                messages.ERROR,
            )
            return
        seconds = (run.finished_at - run.started_at).total_seconds()
        summary = (
            f"{report.users_checked} users checked in {seconds:.1f} s; balances {report.total_balances} "
            f"+ fees {report.total_fees} + escrow held {report.total_escrow_held}, "
            f"deposits {report.total_deposits} - withdrawals {report.total_withdrawals}."
        )
        if report.ok:
            self.message_user(request, f"Ledger OK: {summary}", messages.SUCCESS)
            return
        self.message_user(request, f"Ledger BROKEN: {summary}", messages.ERROR)
        if report.mismatched_users:
            self.message_user(request, _mismatch_message(report), messages.ERROR)
        if not report.totals_ok:
            self.message_user(
                request,
                "The totals do not add up: balances + fees + escrow held != deposits - withdrawals.",
                messages.ERROR,
            )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Django runs an action only on selected rows; this one covers the whole ledger, so it
        # runs without a selection (with one, it ignores it just the same).
        if (
            request.method == "POST"
            and _posted_action(request) == "check_ledger"
            and self.has_view_permission(request)
        ):
            self.check_ledger(request)
            return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)


def _posted_action(request: HttpRequest) -> str | None:
    """The action whose button was pushed, read as ModelAdmin.response_action reads it: the
    changelist has an action form above the list and one below, and "index" says which."""
    if "index" not in request.POST:
        return None
    try:
        return request.POST.getlist("action")[int(request.POST["index"])]
    except (ValueError, IndexError):
        return None


def _mismatch_message(report: LedgerReport) -> str:
    """'N users whose balance differs from their ledger: alice (#12) balance 10.01, ledger 10.00…'"""
    listed = report.mismatched_users[:MAX_LISTED_USERS]
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[user_id for user_id, _, _ in listed])
        .values_list("pk", "username")
    )
    details = format_html_join(
        "; ",
        '<a href="{}">{} (#{})</a>: balance {}, ledger sum {} (differs by {})',
        (
            (ledger_url(user_id), names.get(user_id, "?"), user_id, balance, total, balance - total)
            for user_id, balance, total in listed
        ),
    )
    more = len(report.mismatched_users) - len(listed)
    return format_html(
        "{} user(s) whose balance differs from their ledger: {}{}",
        len(report.mismatched_users),
        details,
        f"; and {more} more (manage.py check_ledger lists them)" if more else "",
    )


@admin.register(WalletTransaction)
class WalletTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "type", "amount", "status", "bounty_id", "reference", "created_at")
    list_filter = ("type", "status")
    list_select_related = ("user",)
    # "=": a pasted Idempotency-Key or provider reference matches exactly
    search_fields = ("reference", "=idempotency_key", "user__username")
    ordering = ("-created_at",)
    show_full_result_count = False


@admin.register(LedgerCheckRun)
class LedgerCheckRunAdmin(ReadOnlyAdmin):
    """Every check_ledger run, from the command or the wallet list's action."""

    list_display = ("started_at", "ok", "users_checked", "mismatched_users", "duration", "triggered_by")
    list_filter = ("ok",)
    fields = (
        "started_at",
        "finished_at",
        "duration",
        "ok",
        "users_checked",
        "mismatched_users",
        "totals_summary",
        "triggered_by",
    )
    readonly_fields = ("duration", "totals_summary")
    ordering = ("-started_at",)

    @admin.display(description="duration")
    def duration(self, run: LedgerCheckRun) -> str:
        return f"{(run.finished_at - run.started_at).total_seconds():.2f} s"

    @admin.display(description="totals")
    def totals_summary(self, run: LedgerCheckRun) -> str:
        totals = run.totals
        return (
            f"balances {totals['balances']} + fees {totals['fees']} + escrow held "
            f"{totals['escrow_held']}; deposits {totals['deposits']} - withdrawals "
            f"{totals['withdrawals']}; these add up: {'yes' if totals['totals_ok'] else 'NO'}"
        )

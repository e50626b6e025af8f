"""Bounties in the admin: staff edit the descriptive fields and move a bounty's status only
through actions that call the API's own services, so the escrow and the ledger stay whole
(``check_ledger``). Money, status and the people on a bounty are never edited by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from bounties import services
from bounties.errors import BountyNotEditable
from bounties.models import SEARCH_CONFIG, Bounty, BountyRequest
from bounties.selectors import search_text_normalised
from bounties.serializers import BountyUpdateSerializer
from core.errors import DomainError

# What an owner may change through PATCH /api/bounties/{id}; the admin edits the same fields.
EDITABLE_FIELDS = (
    "title",
    "description",
    "category",
    "work_type",
    "location",
    "is_time_sensitive",
    "deadline",
    "skills_required",
)
# Money, status and people: changing them by hand would bypass the escrow.
MONEY_AND_STATUS_FIELDS = ("status", "amount", "is_for_honor", "owner", "hunter", "ledger")
RECORD_FIELDS = ("view_count", "created_at", "updated_at", "deleted_at")
# One action run is one page of bounties at most: each bounty is its own transaction, and a
# "select all 100,000" by mistake must not cancel the marketplace in one request.
MAX_BOUNTIES_PER_ACTION = 100
# Bounty ids are bigint; a longer number cannot be an id (and would overflow the comparison).
MAX_ID_DIGITS = 18


class BountyAdminForm(forms.ModelForm):
    """The change form's editable fields, validated by the rules of PATCH /api/bounties/{id}."""

    class Meta:
        model = Bounty
        fields = EDITABLE_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Same rule as services.bounty_update, checked here so the form says why; the service
        # checks again under the row lock when saving.
        if self.instance.status not in services.EDITABLE_STATUSES:
            raise ValidationError(BountyNotEditable.default_detail, code="bounty_not_editable")
        changed = {name: cleaned[name] for name in self.changed_data if name in cleaned}
        serializer = BountyUpdateSerializer(self.instance, data=changed, partial=True)
        if not serializer.is_valid():
            for name, errors in serializer.errors.items():
                self.add_error(name if name in self.fields else None, _flat(errors))
        return cleaned


def _flat(errors: Any) -> list[str]:
    """A serializer's error detail (nested per list item for skills) as a list of messages."""
    if isinstance(errors, dict):
        return [message for value in errors.values() for message in _flat(value)]
    if isinstance(errors, list):
        return [message for error in errors for message in _flat(error)]
    return [str(errors)]


@admin.register(Bounty)
class BountyAdmin(admin.ModelAdmin):
    form = BountyAdminForm
    list_display = (
        "id",
        "title",
        "owner",
        "status",
        "amount",
        "is_for_honor",
        "view_count",
        "created_at",
        "deleted_at",
    )
    # Each of these lists its choices from the model, not from a query over the table, and
    # status is indexed (bounty_status_idx). A related-field filter (owner, hunter) would load
    # every user to build its list: search by id or open the user instead.
    list_filter = ("status", "category", "work_type", "is_for_honor")
    list_select_related = ("owner",)
    # Shows the search box; get_search_results matches these two through the full-text index.
    search_fields = ("title", "description")
    search_help_text = (
        "Words of the title or description, stemmed (designs finds design); "
        '"a phrase" in quotes, -word to exclude. A number also finds the bounty with that id.'
    )
    fieldsets = (
        (None, {"fields": EDITABLE_FIELDS}),
        (
            "Money and status",
            {
                "description": "Changed only by the actions of the bounty list (cancel with refund, "
                "archive), which run the API's services as the bounty's owner.",
                "fields": MONEY_AND_STATUS_FIELDS,
            },
        ),
        ("Record", {"fields": RECORD_FIELDS}),
    )
    readonly_fields = (*MONEY_AND_STATUS_FIELDS, *RECORD_FIELDS)
    ordering = ("-created_at",)
    actions = ("cancel_bounties", "archive_bounties")
    # COUNT(*) over every bounty on each page view costs more than the page itself.
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Bounty]:
        # Staff see bounties deleted through the API too (their ledger rows point at them).
        return Bounty.all_objects.select_related("owner").defer("search_vector", "description")

    def get_readonly_fields(self, request: HttpRequest, obj: Bounty | None = None) -> tuple[str, ...]:
        if obj is not None and obj.status not in services.EDITABLE_STATUSES:
            return (*EDITABLE_FIELDS, *self.readonly_fields)
        return self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Bounty | None = None) -> list:
        if obj is None or obj.status in services.EDITABLE_STATUSES:
            return list(self.fieldsets)
        frozen = (None, {"description": BountyNotEditable.default_detail, "fields": EDITABLE_FIELDS})
        return [frozen, *self.fieldsets[1:]]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Bounty | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.status not in services.EDITABLE_STATUSES:
            # Nothing on the form can be saved (the form refuses a post all the same).
            context.update(show_save=False, show_save_and_continue=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A bounty is posted by its owner, whose wallet pays the escrow in the same transaction
        # (services.bounty_create): staff cannot spend a user's money on their behalf.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Bounty | None = None) -> bool:
        # Bounties stay in the table for their ledger rows; cancelling refunds and hides nothing.
        return False

    @admin.display(description="ledger")
    def ledger(self, bounty: Bounty) -> str:
        url = reverse("admin:wallet_wallettransaction_changelist")
        return format_html('<a href="{}?bounty__id__exact={}">ledger rows of this bounty</a>', url, bounty.pk)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Bounty], search_term: str
    ) -> tuple[QuerySet[Bounty], bool]:
        """Full-text search on the stored search_vector (bounty_search_gin), as the API's
        bounty_search does, instead of ILIKE '%term%' over every row; a number is also an id."""
        term = search_term.strip()
        if not term:
            return queryset, False
        query = SearchQuery(search_text_normalised(term), config=SEARCH_CONFIG, search_type="websearch")
        condition = Q(search_vector=query)
        if term.isdigit() and len(term) <= MAX_ID_DIGITS:
            condition |= Q(pk=int(term))
        return queryset.filter(condition), False

    def save_model(self, request: HttpRequest, obj: Bounty, form: forms.ModelForm, change: bool) -> None:
        # Through the service, as the owner: it locks the row and refuses a bounty that was
        # completed or cancelled since the form was shown.
        data = {name: form.cleaned_data[name] for name in form.changed_data}
        services.bounty_update(bounty_id=obj.pk, user_id=obj.owner_id, data=data)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            # The bounty changed status between the form's check and the save (its transaction
            # rolled back, nothing was saved): say so instead of answering 500.
            self.message_user(request, f"Not saved: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(description="Cancel selected bounties (refund escrow to the owner)", permissions=["change"])
    def cancel_bounties(self, request: HttpRequest, queryset: QuerySet[Bounty]) -> None:
        self._transition(request, queryset, services.bounty_cancel, "cancelled", refunds=True)

    @admin.action(description="Archive selected bounties (completed or cancelled)", permissions=["change"])
    def archive_bounties(self, request: HttpRequest, queryset: QuerySet[Bounty]) -> None:
        self._transition(request, queryset, services.bounty_archive, "archived", refunds=False)

    def _transition(
        self,
        request: HttpRequest,
        queryset: QuerySet[Bounty],
        service: Callable[..., Bounty],
        done: str,
        *,
        refunds: bool,
    ) -> None:
        """Run ``service`` on each bounty as its owner, each in its own transaction; report
        every bounty's outcome and record each success in the admin log."""
        bounties = list(
            queryset.order_by("pk").only("pk", "title", "owner_id", "status", "amount", "is_for_honor")[
                : MAX_BOUNTIES_PER_ACTION + 1
            ]
        )
        if len(bounties) > MAX_BOUNTIES_PER_ACTION:
            self.message_user(
                request,
                f"Select at most {MAX_BOUNTIES_PER_ACTION} bounties per run; nothing was changed.",
                messages.ERROR,
            )
            return
        for bounty in bounties:
            before = bounty.status
            try:
                changed = service(bounty_id=bounty.pk, user_id=bounty.owner_id)
            except DomainError as exc:
                self.message_user(request, f"Bounty #{bounty.pk} not {done}: {exc.detail}", messages.ERROR)
                continue
            refund = f"; escrow of {bounty.amount} refunded to the owner" if refunds and bounty.amount else ""
            message = f"Status {before} -> {changed.status} by admin action, as the owner{refund}."
            self.log_change(request, changed, message)
            self.message_user(request, f"Bounty #{bounty.pk} {done}{refund}.", messages.SUCCESS)


@admin.register(BountyRequest)
class BountyRequestAdmin(admin.ModelAdmin):
    """Applications are read-only here: accepting one moves its bounty to in_progress and rejects
    the others in one transaction (bounties.services.request_accept), which a form edit of
    ``status`` would skip, leaving an accepted application on an open bounty."""

    list_display = ("id", "bounty", "hunter", "status", "created_at")
    list_filter = ("status",)
    list_select_related = ("bounty", "hunter")
    raw_id_fields = ("bounty", "hunter")
    ordering = ("-created_at",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

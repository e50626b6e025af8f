"""The bounty admin: money and status are read-only on the form, edits keep the API's rules,
status moves only through actions that call the services, and search uses the full-text index."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django import forms
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bounties import admin as bounty_admin
from bounties.models import Bounty, BountyStatus
from bounties.services import bounty_cancel, bounty_complete, request_accept
from tests.conftest import ledger_is_consistent
from tests.factories import UserFactory, application, funded_user, paid_bounty
from wallet.models import TransactionType, WalletAccount, WalletTransaction
from wallet.selectors import wallet_summary

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/bounties/bounty/"


def change_url(bounty: Bounty) -> str:
    return f"{CHANGELIST}{bounty.pk}/change/"


@pytest.fixture
def staff():
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def form_data(bounty: Bounty, **overrides) -> dict:
    """The change form as the browser posts it: the editable fields with their current values."""
    data = {
        "title": bounty.title,
        "description": bounty.description,
        "category": bounty.category,
        "work_type": bounty.work_type,
        "location": bounty.location,
        "deadline_0": "",
        "deadline_1": "",
        "skills_required": ",".join(bounty.skills_required),
        "_save": "Save",
    }
    data.update(overrides)
    return data


def run_action(browser: Client, action: str, *bounties: Bounty) -> list[str]:
    """Post an action of the bounty list on ``bounties``; returns the messages shown after it."""
    response = browser.post(
        CHANGELIST,
        {"action": action, "index": 0, "_selected_action": [b.pk for b in bounties]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def completed_bounty(amount: str = "80.00") -> Bounty:
    bounty = paid_bounty(amount=amount)
    request = application(bounty)
    request_accept(request_id=request.pk, user_id=bounty.owner_id)
    return bounty_complete(bounty_id=bounty.pk, user_id=bounty.owner_id)


def ledger_snapshot() -> tuple[list[tuple], list[tuple]]:
    rows = list(WalletTransaction.objects.order_by("pk").values_list("pk", "user_id", "type", "amount"))
    balances = list(WalletAccount.objects.order_by("pk").values_list("pk", "balance"))
    return rows, balances


def bounty_log(bounty: Bounty) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Bounty), object_id=str(bounty.pk)
        ).order_by("pk")
    )


# --- the change form ---------------------------------------------------------------------------


def test_change_form_shows_money_status_and_people_read_only(browser):
    bounty = paid_bounty()

    page = browser.get(change_url(bounty)).content.decode()

    assert 'name="title"' in page
    for field in ("status", "amount", "is_for_honor", "owner", "hunter", "view_count", "deleted_at"):
        assert f'name="{field}"' not in page, field


def test_posted_status_amount_owner_hunter_and_honor_are_ignored_and_the_ledger_stays_whole(browser):
    bounty = paid_bounty(amount="80.00")
    stranger = funded_user("5.00")
    guarded = ("status", "amount", "owner_id", "hunter_id", "is_for_honor")
    before = Bounty.objects.values(*guarded).get(pk=bounty.pk)

    response = browser.post(
        change_url(bounty),
        form_data(
            bounty,
            status=BountyStatus.COMPLETED,
            amount="1.00",
            is_for_honor="on",
            owner=stranger.pk,
            hunter=stranger.pk,
        ),
    )

    assert response.status_code == 302
    after = Bounty.objects.values(*guarded).get(pk=bounty.pk)
    assert after == before
    assert after["amount"] == Decimal("80.00")
    assert ledger_is_consistent()


def test_editing_the_title_of_an_open_bounty_saves_it_and_logs_the_change(browser, staff):
    bounty = paid_bounty()

    response = browser.post(change_url(bounty), form_data(bounty, title="Build a landing page for a florist"))

    assert response.status_code == 302
    bounty.refresh_from_db()
    assert bounty.title == "Build a landing page for a florist"
    [entry] = bounty_log(bounty)
    assert entry.user_id == staff.pk
    assert "Title" in entry.get_change_message()


def test_editing_an_in_progress_bounty_is_allowed(browser):
    bounty = paid_bounty()
    request_accept(request_id=application(bounty).pk, user_id=bounty.owner_id)

    response = browser.post(change_url(bounty), form_data(bounty, location="Lisbon"))

    assert response.status_code == 302
    assert Bounty.objects.get(pk=bounty.pk).location == "Lisbon"


def test_editing_a_completed_bounty_is_refused_and_changes_nothing(browser):
    bounty = completed_bounty()

    response = browser.post(change_url(bounty), form_data(bounty, title="A brand new title for it"))

    assert response.status_code == 200
    assert "cannot be edited" in response.content.decode()
    assert Bounty.objects.get(pk=bounty.pk).title == bounty.title
    assert bounty_log(bounty) == []


def test_completed_bounty_form_shows_every_field_read_only_and_no_save_button(browser):
    bounty = completed_bounty()

    page = browser.get(change_url(bounty)).content.decode()

    assert 'name="title"' not in page
    assert 'name="description"' not in page
    assert 'name="_save"' not in page
    assert "cannot be edited" in page


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "Too short"}, "title"),
        ({"description": "Far too short to describe any work."}, "description"),
        ({"work_type": "in_person", "location": ""}, "location"),
    ],
    ids=["title too short", "description too short", "in person without location"],
)
def test_an_edit_breaking_the_api_rules_is_refused_and_changes_nothing(browser, change, field):
    bounty = paid_bounty()

    response = browser.post(change_url(bounty), form_data(bounty, **change))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    unchanged = Bounty.objects.get(pk=bounty.pk)
    assert (unchanged.title, unchanged.description, unchanged.work_type) == (
        bounty.title,
        bounty.description,
        bounty.work_type,
    )


def test_a_save_the_service_refuses_under_its_lock_is_reported_and_changes_nothing(browser, monkeypatch):
    # As if the owner completed the bounty between the form's check and the save: the form lets
    # the edit through, services.bounty_update refuses it.
    bounty = completed_bounty()
    monkeypatch.setattr(bounty_admin.BountyAdminForm, "clean", forms.ModelForm.clean)
    monkeypatch.setattr(
        bounty_admin.BountyAdmin, "get_readonly_fields", lambda self, request, obj=None: self.readonly_fields
    )

    data = form_data(bounty, title="A brand new title for it")

    response = browser.post(change_url(bounty), data, follow=True)

    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        "Not saved: Completed, cancelled and archived bounties cannot be edited."
    ]
    assert Bounty.objects.get(pk=bounty.pk).title == bounty.title
    assert bounty_log(bounty) == []


def test_staff_cannot_add_or_delete_bounties_in_the_admin(browser):
    bounty = paid_bounty()

    assert browser.get(f"{CHANGELIST}add/").status_code == 403
    assert browser.post(f"{CHANGELIST}{bounty.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Bounty.all_objects.filter(pk=bounty.pk).exists()


# --- actions -----------------------------------------------------------------------------------


def test_cancel_action_refunds_the_escrow_and_logs_it(browser, staff):
    owner = funded_user("100.00")
    bounty = paid_bounty(owner=owner, amount="80.00")
    application(bounty)

    shown = run_action(browser, "cancel_bounties", bounty)

    assert shown == [f"Bounty #{bounty.pk} cancelled; escrow of 80.00 refunded to the owner."]
    assert Bounty.objects.get(pk=bounty.pk).status == BountyStatus.CANCELLED
    refund = WalletTransaction.objects.get(bounty=bounty, type=TransactionType.REFUND)
    assert (refund.user_id, refund.amount) == (owner.pk, Decimal("80.00"))
    summary = wallet_summary(user_id=owner.pk)
    assert (summary.available, summary.pending, summary.balance) == (Decimal("100.00"), 0, Decimal("100.00"))
    assert ledger_is_consistent()
    [entry] = bounty_log(bounty)
    assert (entry.user_id, entry.action_flag) == (staff.pk, CHANGE)
    assert "open -> cancelled" in entry.change_message


def test_cancel_action_on_a_completed_bounty_reports_an_error_and_changes_nothing(browser):
    bounty = completed_bounty()
    ledger_before = ledger_snapshot()

    shown = run_action(browser, "cancel_bounties", bounty)

    assert shown == [
        f"Bounty #{bounty.pk} not cancelled: Only an open or in-progress bounty can be cancelled."
    ]
    assert Bounty.objects.get(pk=bounty.pk).status == BountyStatus.COMPLETED
    assert ledger_snapshot() == ledger_before
    assert bounty_log(bounty) == []


def test_cancel_action_reports_each_bounty_and_cancels_the_ones_it_may(browser):
    open_bounty = paid_bounty()
    completed = completed_bounty()

    shown = run_action(browser, "cancel_bounties", open_bounty, completed)

    assert len(shown) == 2
    assert f"Bounty #{open_bounty.pk} cancelled" in shown[0]
    assert f"Bounty #{completed.pk} not cancelled" in shown[1]
    assert Bounty.objects.get(pk=open_bounty.pk).status == BountyStatus.CANCELLED
    assert Bounty.objects.get(pk=completed.pk).status == BountyStatus.COMPLETED
    assert ledger_is_consistent()


def test_archive_action_archives_a_cancelled_bounty_and_logs_it(browser, staff):
    bounty = paid_bounty()
    bounty_cancel(bounty_id=bounty.pk, user_id=bounty.owner_id)
    ledger_before = ledger_snapshot()

    shown = run_action(browser, "archive_bounties", bounty)

    assert shown == [f"Bounty #{bounty.pk} archived."]
    assert Bounty.objects.get(pk=bounty.pk).status == BountyStatus.ARCHIVED
    assert ledger_snapshot() == ledger_before
    [entry] = bounty_log(bounty)
    assert entry.user_id == staff.pk
    assert "cancelled -> archived" in entry.change_message


def test_archive_action_on_an_open_bounty_reports_an_error_and_changes_nothing(browser):
    bounty = paid_bounty()

    shown = run_action(browser, "archive_bounties", bounty)

    assert shown == [
        f"Bounty #{bounty.pk} not archived: Only a completed or cancelled bounty can be archived."
    ]
    assert Bounty.objects.get(pk=bounty.pk).status == BountyStatus.OPEN
    assert bounty_log(bounty) == []


def test_an_action_over_too_many_bounties_is_refused_and_changes_nothing(browser, monkeypatch):
    monkeypatch.setattr(bounty_admin, "MAX_BOUNTIES_PER_ACTION", 1)
    first, second = paid_bounty(), paid_bounty()

    shown = run_action(browser, "cancel_bounties", first, second)

    assert shown == ["Select at most 1 bounties per run; nothing was changed."]
    assert set(Bounty.objects.values_list("status", flat=True)) == {BountyStatus.OPEN}


def test_bounty_list_filters_and_search_cost_the_same_queries_for_few_bounties_or_more(browser):
    paid_bounty(title="Design a logo for a coffee roastery")
    params = {"status__exact": "open", "category__exact": "web", "is_for_honor__exact": "0", "q": "logo"}
    with CaptureQueriesContext(connection) as few:
        assert browser.get(CHANGELIST, params).status_code == 200

    for _ in range(3):
        paid_bounty(title="Design a logo for a tea house")
    with CaptureQueriesContext(connection) as more:
        browser.get(CHANGELIST, params)

    assert len(more) == len(few)
    # No filter builds its choices from a query over users or bounties.
    assert not any("DISTINCT" in q["sql"] for q in more)


# --- search ------------------------------------------------------------------------------------


def listed_ids(response) -> set[int]:
    return {bounty.pk for bounty in response.context["cl"].result_list}


def test_search_finds_bounties_by_stemmed_words_of_title_and_description(browser):
    logo = paid_bounty(title="Design a logo for a coffee roastery")
    described = paid_bounty(
        title="A small job for this weekend",
        description="We need someone who designs a friendly mascot for our football club, in vectors.",
    )
    other = paid_bounty(title="Build a landing page for a bakery")

    found = listed_ids(browser.get(CHANGELIST, {"q": "designs"}))

    assert found == {logo.pk, described.pk}
    assert other.pk not in found


def test_search_finds_a_bounty_by_its_id(browser):
    wanted, _ = paid_bounty(), paid_bounty()

    assert listed_ids(browser.get(CHANGELIST, {"q": str(wanted.pk)})) == {wanted.pk}


def test_search_filters_on_the_indexed_search_vector_not_ilike(browser):
    paid_bounty(title="Design a logo for a coffee roastery")

    with CaptureQueriesContext(connection) as queries:
        browser.get(CHANGELIST, {"q": "logo"})

    searches = [q["sql"] for q in queries if '"bounties_bounty"' in q["sql"] and "WHERE" in q["sql"]]
    assert searches
    assert all('"search_vector" @@' in sql for sql in searches)
    assert not any("LIKE" in sql for sql in searches)


def test_applications_are_read_only_in_the_admin():
    bounty = paid_bounty(amount="30.00")
    pending = application(bounty)
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(
        f"/admin/bounties/bountyrequest/{pending.pk}/change/",
        {"bounty": bounty.pk, "hunter": pending.hunter_id, "message": pending.message, "status": "accepted"},
    )

    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert client.get("/admin/bounties/bountyrequest/add/").status_code == 403

"""The wallet admin: balance / pending / available per account, the link to a user's ledger,
and the whole-ledger check (admin action and command), each run recorded."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory, funded_user, paid_bounty
from wallet import admin as wallet_admin
from wallet.models import LedgerCheckRun
from wallet.selectors import last_ledger_check, wallet_summary

pytestmark = pytest.mark.django_db

ACCOUNTS = "/admin/wallet/walletaccount/"
LEDGER = "/admin/wallet/wallettransaction/"
RUNS = "/admin/wallet/ledgercheckrun/"


@pytest.fixture
def staff():
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def readonly_value(page: str, field: str) -> str:
    """The text a read-only admin field shows."""
    match = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', page, re.DOTALL)
    assert match, field
    return match.group(1).strip()


def check_ledger_action(browser: Client, *selected: int) -> list[str]:
    response = browser.post(
        ACCOUNTS,
        {"action": "check_ledger", "index": 0, "_selected_action": list(selected)},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def break_balance(user_id: int, by: str = "0.01") -> None:
    """Drift one balance away from its ledger, as a bad manual fix in SQL would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallet_walletaccount SET balance = balance + %s WHERE user_id = %s",
            [Decimal(by), user_id],
        )


# --- account pages -----------------------------------------------------------------------------


def test_wallet_page_shows_balance_pending_and_available(browser):
    owner = funded_user("100.00")
    paid_bounty(owner=owner, amount="80.00")

    page = browser.get(f"{ACCOUNTS}{owner.pk}/change/").content.decode()

    summary = wallet_summary(user_id=owner.pk)
    assert (summary.balance, summary.pending, summary.available) == (
        Decimal("100.00"),
        Decimal("80.00"),
        Decimal("20.00"),
    )
    assert readonly_value(page, "total_balance") == "100.00"
    assert readonly_value(page, "pending") == "80.00"
    assert readonly_value(page, "available") == "20.00"


def test_wallet_list_shows_the_figures_in_the_same_queries_for_one_account_or_many(browser):
    owner = funded_user("100.00")
    paid_bounty(owner=owner, amount="30.00")
    with CaptureQueriesContext(connection) as one_account:
        response = browser.get(ACCOUNTS)
    row = next(account for account in response.context["cl"].result_list if account.user_id == owner.pk)
    assert (row.balance, row.held) == (Decimal("70.00"), Decimal("30.00"))

    for _ in range(4):
        paid_bounty(owner=funded_user("50.00"), amount="20.00")
    with CaptureQueriesContext(connection) as five_accounts:
        browser.get(ACCOUNTS)

    assert len(five_accounts) == len(one_account)


def test_wallet_page_links_to_the_users_ledger_and_only_theirs(browser):
    owner = funded_user("100.00", username="owner")
    other = funded_user("40.00", username="someone_else")
    paid_bounty(owner=owner, amount="80.00")

    page = browser.get(f"{ACCOUNTS}{owner.pk}/change/").content.decode()
    link = f"{LEDGER}?user__id__exact={owner.pk}"
    assert f'href="{link}"' in page

    ledger = browser.get(link)
    assert ledger.status_code == 200
    rows = ledger.context["cl"].result_list
    assert sorted(row.type for row in rows) == ["deposit", "escrow"]
    assert {row.user_id for row in rows} == {owner.pk}
    assert other.pk not in {row.user_id for row in rows}


def test_wallet_accounts_and_ledger_stay_read_only(browser):
    owner = funded_user("10.00")

    assert browser.get(f"{ACCOUNTS}add/").status_code == 403
    assert browser.post(f"{ACCOUNTS}{owner.pk}/change/", {"balance": "1000.00"}).status_code == 403
    assert wallet_summary(user_id=owner.pk).available == Decimal("10.00")


# --- the check-ledger action -------------------------------------------------------------------


def test_check_ledger_action_reports_ok_without_a_selection_and_records_the_run(browser):
    paid_bounty(owner=funded_user("100.00"), amount="80.00")

    shown = check_ledger_action(browser)

    assert len(shown) == 1
    assert shown[0].startswith("Ledger OK: 1 users checked")
    run = last_ledger_check()
    assert run is not None
    assert (run.ok, run.users_checked, run.mismatched_users) == (True, 1, 0)
    assert run.triggered_by == "admin:operator"
    assert run.totals == {
        "balances": "20.00",
        "fees": "0.00",
        "escrow_held": "80.00",
        "deposits": "100.00",
        "withdrawals": "0.00",
        "totals_ok": True,
    }
    assert run.started_at <= run.finished_at


def test_check_ledger_action_checks_the_whole_ledger_whatever_is_selected(browser):
    honest = funded_user("10.00")
    drifted = funded_user("10.00")
    break_balance(drifted.pk)

    shown = check_ledger_action(browser, honest.pk)

    assert shown[0].startswith("Ledger BROKEN")
    assert last_ledger_check().mismatched_users == 1


def test_check_ledger_action_names_the_users_whose_balance_differs(browser):
    funded_user("10.00", username="honest")
    drifted = funded_user("10.00", username="drifted")
    break_balance(drifted.pk, "0.01")

    shown = check_ledger_action(browser)

    assert shown[0].startswith("Ledger BROKEN: 2 users checked")
    users = shown[1]
    assert users.startswith("1 user(s) whose balance differs from their ledger: ")
    assert f"drifted (#{drifted.pk})</a>: balance 10.01, ledger sum 10.00 (differs by 0.01)" in users
    assert "honest" not in users
    assert f"?user__id__exact={drifted.pk}" in users  # a link to that user's ledger
    assert shown[2].startswith("The totals do not add up")
    run = last_ledger_check()
    assert (run.ok, run.mismatched_users, run.users_checked) == (False, 1, 2)


def test_check_ledger_action_that_cannot_finish_says_so_and_records_nothing(browser, monkeypatch):
    def timed_out(**kwargs):
        raise OperationalError("canceling statement due to statement timeout")

    monkeypatch.setattr(wallet_admin, "ledger_check_run", timed_out)

    shown = check_ledger_action(browser)

    assert len(shown) == 1
    assert shown[0].startswith("The ledger check did not finish")
    assert "manage.py check_ledger" in shown[0]
    assert not LedgerCheckRun.objects.exists()


def test_check_ledger_action_is_refused_to_staff_without_wallet_permissions():
    client = Client()
    client.force_login(UserFactory(is_staff=True))  # staff, but no permission on wallets

    response = client.post(ACCOUNTS, {"action": "check_ledger", "index": 0})

    assert response.status_code == 403
    assert not LedgerCheckRun.objects.exists()


# --- recorded runs -----------------------------------------------------------------------------


def test_check_ledger_command_records_its_run(capsys):
    funded_user("25.00")

    call_command("check_ledger")

    assert "ledger OK" in capsys.readouterr().out
    run = last_ledger_check()
    assert (run.ok, run.users_checked, run.mismatched_users, run.triggered_by) == (True, 1, 0, "command")
    assert run.totals["deposits"] == "25.00"


def test_check_ledger_command_records_a_broken_run_and_still_fails():
    drifted = funded_user("10.00")
    break_balance(drifted.pk)

    with pytest.raises(CommandError, match="1 user"):
        call_command("check_ledger")

    run = last_ledger_check()
    assert (run.ok, run.mismatched_users, run.triggered_by) == (False, 1, "command")


def test_last_ledger_check_is_none_before_any_run_then_the_newest():
    assert last_ledger_check() is None

    call_command("check_ledger")
    first = last_ledger_check()
    call_command("check_ledger")

    newest = last_ledger_check()
    assert newest.pk != first.pk
    assert newest.started_at >= first.started_at


def test_ledger_check_runs_are_listed_read_only(browser):
    call_command("check_ledger")
    run = last_ledger_check()

    listing = browser.get(RUNS)
    assert listing.status_code == 200
    assert [r.pk for r in listing.context["cl"].result_list] == [run.pk]
    page = browser.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert "these add up: yes" in page
    assert 'type="submit"' not in page.split('id="ledgercheckrun_form"')[-1]
    assert browser.get(f"{RUNS}add/").status_code == 403
    assert browser.post(f"{RUNS}{run.pk}/change/", {"ok": "on"}).status_code == 403
    assert browser.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LedgerCheckRun.objects.filter(pk=run.pk).exists()

"""The overview: every check in one table, coloured by its thresholds, each linking to its page."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from perf.monitor.overview import gather
from perf.monitor.pages import Level
from tests.factories import UserFactory, funded_user
from wallet.models import WalletAccount

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/perf/overview/"
CHECKS = [
    "Long-running queries",
    "Connection pool",
    "Connections",
    "Response cache hit rate",
    "Redis",
    "Slow queries, last hour",
    "Invalid indexes",
    "Unused indexes",
    "Duplicate indexes",
    "Tables read by sequential scans",
    "Ledger check",
    "PostgreSQL",
]


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def checks_by_name(rf) -> dict:
    return {check.name: check for check in gather(rf.get(URL))}


def test_the_overview_shows_every_check_with_a_status_and_a_link(staff_client):
    response = staff_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    rows = re.findall(
        r'<tr class="perf-check perf-check-(\w+)">\s*<th scope="row">(?:<a href="([^"]+)">)?([^<]+)<', html
    )
    assert [name for _, _, name in rows] == CHECKS
    assert {level for level, _, _ in rows} <= {level.value for level in Level}
    links = {name: url for _, url, name in rows}
    assert links["Connection pool"] == "/admin/perf/connectionpool/"
    assert links["Slow queries, last hour"] == "/admin/perf/querystats/"
    assert links["Unused indexes"] == "/admin/perf/indexusage/"
    assert links["Long-running queries"] == "/admin/perf/livequery/"
    assert links["Response cache hit rate"] == "/admin/perf/cachestats/"


def test_the_overview_is_for_staff_only():
    member = Client()
    member.force_login(UserFactory())

    assert member.get(URL).status_code == 403
    assert Client().get(URL).status_code == 302


def test_ledger_check_is_amber_before_any_run_green_after_a_good_one(rf):
    assert checks_by_name(rf)["Ledger check"].level == Level.WARNING

    call_command("check_ledger", stdout=open("/dev/null", "w"))  # noqa: SIM115

    check = checks_by_name(rf)["Ledger check"]
    assert (check.level, check.value.startswith("ok,")) == (Level.OK, True)


def test_a_broken_ledger_is_red(rf):
    user = funded_user("50.00")
    WalletAccount.objects.filter(user=user).update(balance=Decimal("60.00"))  # behind the ledger's back
    with pytest.raises(Exception):  # noqa: B017 (the command exits non-zero)
        call_command("check_ledger", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))  # noqa: SIM115

    check = checks_by_name(rf)["Ledger check"]
    assert check.level == Level.CRITICAL and "BROKEN: 1 user" in check.value


def test_connections_and_server_are_measured_and_the_pool_without_workers_is_grey(rf):
    checks = checks_by_name(rf)

    assert checks["Connections"].level == Level.OK and " of " in checks["Connections"].value
    assert checks["PostgreSQL"].value.startswith("PostgreSQL 15")
    assert checks["Connection pool"].level == Level.UNKNOWN  # no gunicorn worker published here


def test_connections_turn_amber_and_red_with_their_thresholds(rf, settings):
    settings.PERF_CONNECTIONS_WARNING_PCT = 1
    assert checks_by_name(rf)["Connections"].level in {Level.WARNING, Level.CRITICAL}
    settings.PERF_CONNECTIONS_CRITICAL_PCT = 1
    assert checks_by_name(rf)["Connections"].level == Level.CRITICAL

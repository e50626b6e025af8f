from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bounties.models import Bounty, BountyStatus
from tests.conftest import assert_error, client_for
from tests.factories import UserFactory, bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


def test_created_bounty_is_returned_in_full_with_money_as_a_string():
    owner = funded_user("100.00")

    response = client_for(owner).post(
        "/api/bounties", bounty_data(amount="12.50", skills_required=["react"]), format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["amount"] == "12.50"
    assert body["owner_id"] == owner.pk
    assert body["status"] == "open"
    assert body["skills_required"] == ["react"]
    assert body["description"].startswith("A responsive")


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"is_for_honor": True, "amount": None},
        {"amount": "7", "skills_required": ["react", "  css  "], "is_time_sensitive": True},
        {"work_type": "in_person", "location": "  Lyon  ", "title": "  Paint a fence in the garden  "},
        {"deadline": "2031-05-04T10:20:30.123456+02:00", "category": "design"},
    ],
)
def test_a_created_bountys_answer_is_the_detail_read_back_from_the_database(settings, overrides):
    """The create answers with (and caches) a detail built from the row it inserted, not read
    back: it must be exactly what a read computes from PostgreSQL."""
    owner = funded_user("100.00")
    data = {key: value for key, value in bounty_data(**overrides).items() if value is not None}

    created = client_for(owner).post("/api/bounties", data, format="json")
    assert created.status_code == 201, created.content

    settings.CACHE_TTL_BOUNTY_DETAIL = 0  # computed from PostgreSQL, not the written-through entry
    read_back = client_for(UserFactory()).get(f"/api/bounties/{created.json()['id']}")
    assert read_back["X-Cache"] == "miss"
    assert created.json() == read_back.json()


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"title": "Too short"}, {"title"}),
        ({"title": "x" * 201}, {"title"}),
        ({"description": "Too short to explain the work."}, {"description"}),
        ({"amount": "10000.01"}, {"amount"}),
        ({"amount": "-1.00"}, {"amount"}),
        ({"amount": "0.00"}, {"amount"}),
        ({"amount": "5.00", "is_for_honor": True}, {"amount"}),
        ({"category": "astrology"}, {"category"}),
        ({"work_type": "in_person", "location": ""}, {"location"}),
        ({"deadline": "2001-01-01T00:00:00Z"}, {"deadline"}),
        ({"skills_required": ["x" * 41]}, {"skills_required"}),
    ],
)
def test_invalid_bounty_is_rejected_with_each_field_named_and_nothing_created(overrides, fields):
    owner = funded_user("20000.00")

    response = client_for(owner).post("/api/bounties", bounty_data(**overrides), format="json")

    error = assert_error(response, 400, "validation_error")
    assert set(error["fields"]) == fields
    assert not Bounty.all_objects.exists()


def test_creating_needs_authentication(api_client):
    assert_error(api_client.post("/api/bounties", bounty_data(), format="json"), 401)


def test_list_is_public_open_only_newest_first_and_slim(api_client):
    older = paid_bounty()
    newer = paid_bounty()
    cancelled = paid_bounty()
    Bounty.objects.filter(pk=cancelled.pk).update(status=BountyStatus.CANCELLED)

    body = api_client.get("/api/bounties").json()

    assert [row["id"] for row in body["results"]] == [newer.pk, older.pk]
    row = body["results"][0]
    assert "description" not in row
    assert row["owner_username"] == newer.owner.username
    assert set(body) == {"results", "next", "previous"}


def test_list_filters_combine():
    alice = funded_user("1000.00")
    web_cheap = paid_bounty(alice, amount="20.00", category="web")
    paid_bounty(alice, amount="300.00", category="web")
    paid_bounty(alice, amount="25.00", category="design")
    paid_bounty(amount="22.00", category="web")
    client = client_for(UserFactory())

    rows = client.get(f"/api/bounties?category=web&owner={alice.pk}&max_amount=100").json()["results"]

    assert [row["id"] for row in rows] == [web_cheap.pk]


def test_list_filters_honor_work_type_location_and_status():
    owner = funded_user("100.00")
    honor = paid_bounty(owner, amount="0.00", is_for_honor=True)
    on_site = paid_bounty(owner, amount="10.00", work_type="in_person", location="Lyon")
    done = paid_bounty(owner, amount="10.00")
    Bounty.objects.filter(pk=done.pk).update(status=BountyStatus.COMPLETED, hunter=UserFactory())
    client = client_for(owner)

    assert [r["id"] for r in client.get("/api/bounties?is_for_honor=true").json()["results"]] == [honor.pk]
    assert [
        r["id"] for r in client.get("/api/bounties?work_type=in_person&location=lyon").json()["results"]
    ] == [on_site.pk]
    assert [r["id"] for r in client.get("/api/bounties?status=completed").json()["results"]] == [done.pk]


def test_filter_forms_share_a_class_but_never_values_or_errors():
    """BountyFilter builds its form class once (bounties/filters.py): each request's form still
    holds only its own values and errors."""
    from bounties.filters import BountyFilter

    web = paid_bounty(amount="20.00", category="web")
    design = paid_bounty(amount="20.00", category="design")
    queryset = Bounty.objects.all()
    first = BountyFilter({"category": "web"}, queryset=queryset)
    refused = BountyFilter({"category": "no-such-category", "min_amount": "cheap"}, queryset=queryset)
    second = BountyFilter({"category": "design"}, queryset=queryset)

    assert type(first.form) is type(second.form) is type(refused.form)
    assert first.form.fields["category"] is not second.form.fields["category"]
    assert [bounty.pk for bounty in first.qs] == [web.pk]
    assert not refused.is_valid() and set(refused.errors) == {"category", "min_amount"}
    assert [bounty.pk for bounty in second.qs] == [design.pk]
    assert first.is_valid() and second.is_valid() and not first.errors


@pytest.mark.parametrize(
    "query", ["status=sleeping", "min_amount=cheap", "owner=me", "ordering=title", "is_for_honor=perhaps"]
)
def test_bad_list_parameters_are_400(api_client, query):
    assert_error(api_client.get(f"/api/bounties?{query}"), 400, "validation_error")


def test_ordering_by_amount_and_deadline(api_client):
    owner = funded_user("1000.00")
    soon = timezone.now() + timedelta(days=1)
    later = timezone.now() + timedelta(days=9)
    mid = paid_bounty(owner, amount="50.00", deadline=later.isoformat())
    low = paid_bounty(owner, amount="10.00", deadline=soon.isoformat())
    high = paid_bounty(owner, amount="90.00")

    by_amount = [r["id"] for r in api_client.get("/api/bounties?ordering=amount").json()["results"]]
    by_amount_desc = [r["id"] for r in api_client.get("/api/bounties?ordering=-amount").json()["results"]]
    by_deadline = [r["id"] for r in api_client.get("/api/bounties?ordering=deadline").json()["results"]]

    assert by_amount == [low.pk, mid.pk, high.pk]
    assert by_amount_desc == [high.pk, mid.pk, low.pk]
    assert by_deadline == [low.pk, mid.pk]


def test_cursor_pagination_walks_every_row_once_and_caps_limit(api_client):
    owner = funded_user("10000.00")
    ids = {paid_bounty(owner, amount="1.00").pk for _ in range(7)}

    seen, url = [], "/api/bounties?limit=3"
    while url:
        page = api_client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]

    assert sorted(seen) == sorted(ids)
    assert len(api_client.get("/api/bounties?limit=1000").json()["results"]) == 7


def test_detail_is_public_and_full(api_client):
    bounty = paid_bounty()

    body = api_client.get(f"/api/bounties/{bounty.pk}").json()

    assert body["description"] == bounty.description
    assert body["hunter_username"] is None


def test_unknown_bounty_is_404(api_client):
    assert_error(api_client.get("/api/bounties/987654"), 404, "not_found")
    assert_error(api_client.get("/api/bounties/not-a-number"), 404, "not_found")


def test_owner_edits_an_open_bounty():
    bounty = paid_bounty()
    client = client_for(bounty.owner)

    response = client.patch(f"/api/bounties/{bounty.pk}", {"title": "A better, clearer title"}, format="json")

    assert response.status_code == 200
    assert response.json()["title"] == "A better, clearer title"


def test_money_fields_cannot_be_edited():
    bounty = paid_bounty(amount="40.00")

    response = client_for(bounty.owner).patch(f"/api/bounties/{bounty.pk}", {"amount": "1.00"}, format="json")

    assert set(assert_error(response, 400, "validation_error")["fields"]) == {"amount"}
    bounty.refresh_from_db()
    assert bounty.amount == Decimal("40.00")


def test_someone_else_cannot_edit_or_delete():
    bounty = paid_bounty()
    intruder = client_for(funded_user("10.00"))

    assert_error(
        intruder.patch(f"/api/bounties/{bounty.pk}", {"title": "Mine now, thank you"}, format="json"), 403
    )
    assert_error(intruder.delete(f"/api/bounties/{bounty.pk}"), 403, "not_bounty_owner")
    bounty.refresh_from_db()
    assert (bounty.title, bounty.deleted_at) == ("Build a landing page for a bakery", None)


@pytest.mark.parametrize(
    "final_status", [BountyStatus.COMPLETED, BountyStatus.CANCELLED, BountyStatus.ARCHIVED]
)
def test_finished_bounties_cannot_be_edited(final_status):
    bounty = paid_bounty()
    Bounty.objects.filter(pk=bounty.pk).update(status=final_status, hunter=UserFactory())

    response = client_for(bounty.owner).patch(
        f"/api/bounties/{bounty.pk}", {"title": "Changed after the fact"}, format="json"
    )

    assert_error(response, 409, "bounty_not_editable")
    bounty.refresh_from_db()
    assert bounty.title == "Build a landing page for a bakery"

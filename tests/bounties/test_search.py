from __future__ import annotations

import base64
import random

import pytest

from bounties import selectors
from bounties.models import Bounty, BountyStatus
from tests.conftest import assert_error
from tests.factories import funded_user, paid_bounty

pytestmark = pytest.mark.django_db

FILLER = "Details, timeline and acceptance criteria are discussed on the call; the budget is firm."


@pytest.fixture
def catalogue():
    owner = funded_user("1000.00")
    return {
        "title": paid_bounty(
            owner, amount="10.00", title="React dashboard for a bike shop", description=FILLER
        ),
        "body": paid_bounty(
            owner,
            amount="10.00",
            title="Dashboard for a bike shop",
            description=f"Frontend in React with charts. {FILLER}",
        ),
        "other": paid_bounty(owner, amount="10.00", title="Logo design for a bakery", description=FILLER),
        "mobile": paid_bounty(
            owner, amount="10.00", title="Kotlin mobile app bug fixes", category="mobile", description=FILLER
        ),
    }


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def test_search_ranks_title_matches_above_description_matches(api_client, catalogue):
    response = api_client.get("/api/bounties/search?q=react")

    assert ids(response) == [catalogue["title"].pk, catalogue["body"].pk]
    first, second = response.json()["results"]
    assert first["rank"] > second["rank"]
    assert "description" not in first


def test_search_stems_english_words(api_client, catalogue):
    assert ids(api_client.get("/api/bounties/search?q=fixing")) == [catalogue["mobile"].pk]


def test_search_supports_web_search_syntax(api_client, catalogue):
    assert ids(api_client.get("/api/bounties/search", {"q": '"bike shop" -react'})) == []
    assert ids(api_client.get("/api/bounties/search", {"q": '"shop bike"'})) == []
    assert set(ids(api_client.get("/api/bounties/search", {"q": "bakery or kotlin"}))) == {
        catalogue["other"].pk,
        catalogue["mobile"].pk,
    }


def test_search_takes_the_list_filters(api_client, catalogue):
    assert ids(api_client.get("/api/bounties/search?q=fixes&category=web")) == []
    assert ids(api_client.get("/api/bounties/search?q=fixes&category=mobile")) == [catalogue["mobile"].pk]
    Bounty.objects.filter(pk=catalogue["title"].pk).update(status=BountyStatus.CANCELLED)
    assert ids(api_client.get("/api/bounties/search?q=react")) == [catalogue["body"].pk]
    assert ids(api_client.get("/api/bounties/search?q=react&status=cancelled")) == [catalogue["title"].pk]


def test_search_sees_edits_at_once(api_client, catalogue):
    Bounty.objects.filter(pk=catalogue["other"].pk).update(title="Logo design for a vegan bakery")

    assert ids(api_client.get("/api/bounties/search?q=vegan")) == [catalogue["other"].pk]


def test_search_paginates_by_rank(api_client, catalogue):
    first = api_client.get("/api/bounties/search?q=react&limit=1").json()
    second = api_client.get(first["next"]).json()

    assert [first["results"][0]["id"], second["results"][0]["id"]] == [
        catalogue["title"].pk,
        catalogue["body"].pk,
    ]
    assert second["next"] is None


def test_equal_ranks_come_newest_first_and_page_without_repeats(api_client):
    """Same words, same rank: the tie goes to the newest, so every page (and its cache entry,
    and the next page's offset into the tie) sees one order."""
    owner = funded_user("1000.00")
    twins = [
        paid_bounty(owner, amount="10.00", title="Fix a squeaky door", description=FILLER) for _ in range(7)
    ]
    Bounty.objects.filter(pk__in=[twin.pk for twin in twins]).update(created_at=twins[0].created_at)

    first = api_client.get("/api/bounties/search", {"q": "squeaky", "limit": 3})
    seen, link, ranks = ids(first), first.json()["next"], {row["rank"] for row in first.json()["results"]}
    while link:
        page = api_client.get(link)
        seen, link = seen + ids(page), page.json()["next"]

    assert len(ranks) == 1  # a real tie
    assert seen == sorted((twin.pk for twin in twins), reverse=True)


@pytest.mark.parametrize("query", ["", "?q=", f"?q={'x' * 201}", "?q=react&category=astrology"])
def test_bad_search_is_400(api_client, query):
    assert_error(api_client.get(f"/api/bounties/search{query}"), 400, "validation_error")


# --- every q a client can send gets 200 or 400 ---------------------------------------------------


@pytest.mark.parametrize(
    "q",
    ["-" * 199 + "a", "- " * 99 + "a", "react " + "-" * 100 + " mobile", "-" * 40 + "react", "--react"],
)
def test_runs_of_minus_signs_search_as_one_exclusion(api_client, catalogue, q):
    response = api_client.get("/api/bounties/search", {"q": q})

    assert response.status_code == 200, response.content
    if q.endswith("react"):  # "exclude react": the React bounties are not in the results
        assert catalogue["title"].pk not in ids(response)


def test_operator_soup_never_fails_the_search(api_client, catalogue):
    """A few hundred strings of web-search operators and words, up to the 200-character limit."""
    pieces = ["-", "!", "|", "&", "(", ")", '"', "'", ":", "*", "<->", "<1>", " or ", " ", "react",
              "and", "\\", "~", "@", "'s", "--", " -x", "!-", "\x7f", "é"]  # fmt: skip
    rng = random.Random(2026)
    for _ in range(300):
        q = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 120)))[:200].strip() or "-"

        response = api_client.get("/api/bounties/search", {"q": q})

        assert response.status_code in {200, 400}, (q, response.content)


def test_a_search_postgresql_refuses_is_400_invalid_query(api_client, catalogue, monkeypatch):
    """The backstop behind the normalisation: PostgreSQL's own tsquery limits answer 400."""
    monkeypatch.setattr(selectors, "search_text_normalised", lambda text: text)

    response = api_client.get("/api/bounties/search", {"q": "-" * 40 + "react"})

    assert assert_error(response, 400, "invalid_query")["fields"]["q"]


def test_search_returns_the_best_of_its_newest_candidates(api_client, settings):
    """SEARCH_RANK_CANDIDATES: the newest N matches of the filters are ranked, older ones not."""
    settings.SEARCH_RANK_CANDIDATES = 2
    owner = funded_user("1000.00")
    oldest_and_best = paid_bounty(
        owner, amount="10.00", title="Garden fence garden gate garden shed", description=FILLER
    )
    weaker = paid_bounty(owner, amount="10.00", title="Paint a garden bench", description=FILLER)
    newest = paid_bounty(owner, amount="10.00", title="Garden hose repair", description=FILLER)
    other_category = paid_bounty(
        owner, amount="10.00", title="Garden planner app", category="mobile", description=FILLER
    )

    # The two newest matches are other_category and newest: the best-ranked oldest is not seen.
    assert set(ids(api_client.get("/api/bounties/search?q=garden"))) == {other_category.pk, newest.pk}
    # Filters apply before the cut: the newest two web matches, best first.
    web = api_client.get("/api/bounties/search?q=garden&category=web")
    assert set(ids(web)) == {newest.pk, weaker.pk}
    ranks = [row["rank"] for row in web.json()["results"]]
    assert ranks == sorted(ranks, reverse=True)

    settings.SEARCH_RANK_CANDIDATES = 1000  # (another limit: not the page cached above)
    assert ids(api_client.get("/api/bounties/search?q=garden&category=web&limit=10"))[0] == oldest_and_best.pk


def test_paging_keeps_the_first_pages_window_while_bounties_are_posted(api_client, settings):
    """The newest-N window is pinned in the cursor: matches that newer posts push out of it are
    still on the later pages, posts made since are not, and nothing is shown twice."""
    settings.SEARCH_RANK_CANDIDATES = 4
    owner = funded_user("1000.00")
    early = [
        paid_bounty(owner, amount="10.00", title=f"Garden job number {n}", description=FILLER)
        for n in range(6)
    ]
    first = api_client.get("/api/bounties/search", {"q": "garden", "limit": 2})
    newer = [
        paid_bounty(owner, amount="10.00", title="Garden garden garden", description=FILLER) for _ in range(3)
    ]

    seen, link = ids(first), first.json()["next"]
    while link:
        page = api_client.get(link)
        assert page.status_code == 200, page.content
        seen, link = seen + ids(page), page.json()["next"]

    assert sorted(seen) == sorted(bounty.pk for bounty in early[-4:])
    fresh = api_client.get("/api/bounties/search", {"q": "garden", "limit": 10})
    assert set(ids(fresh)) == {*(bounty.pk for bounty in newer), early[-1].pk}


@pytest.mark.parametrize("window", ["abc", "0", "-5", "99999999999999999999", "١٢"])
def test_a_cursor_with_a_bad_window_is_one_400(api_client, window):
    cursor = base64.b64encode(f"w={window}&p=0.5".encode()).decode()

    response = api_client.get("/api/bounties/search", {"q": "garden", "cursor": cursor})

    assert_error(response, 400, "invalid_cursor")

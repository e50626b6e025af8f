"""The hot queries use indexes on a table large enough that a sequential scan would be chosen
otherwise: asserted on EXPLAIN (FORMAT JSON) of the very querysets the API runs."""

from __future__ import annotations

import json

import pytest

from bounties import selectors
from bounties.models import BountyStatus
from tests.factories import UserFactory
from tests.synthetic import insert_bounties

pytestmark = pytest.mark.django_db

BOUNTIES = 50_000
OWNERS = 500


@pytest.fixture
def many_bounties():
    """50,000 bounties over 500 owners, ~2 % per search topic, 70 % open; then ANALYZE."""
    owners = UserFactory.create_batch(OWNERS)
    insert_bounties(count=BOUNTIES, owner_ids=[owner.pk for owner in owners])
    return owners


def plan_nodes(queryset) -> list[dict]:
    plan = json.loads(queryset.explain(format="json"))[0]["Plan"]
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def bounty_scans(queryset) -> tuple[set[str], set[str]]:
    """(node types that read bounties_bounty, index names used on it)."""
    nodes = [
        n for n in plan_nodes(queryset) if n.get("Relation Name") == "bounties_bounty" or "Index Name" in n
    ]
    return {n["Node Type"] for n in nodes}, {n["Index Name"] for n in nodes if "Index Name" in n}


def first_page(queryset, *ordering: str):
    return queryset.order_by(*ordering)[:21]


def test_open_bounties_list_walks_a_created_at_index(many_bounties):
    node_types, indexes = bounty_scans(
        first_page(selectors.bounty_list().filter(status=BountyStatus.OPEN), "-created_at")
    )

    assert "Seq Scan" not in node_types
    # With 70 % of rows open the planner may walk either index newest-first and stop at 21.
    assert indexes & {"bounty_status_created_idx", "bounty_created_idx"}


def test_list_ordered_by_amount_uses_the_status_amount_index(many_bounties):
    node_types, indexes = bounty_scans(
        first_page(selectors.bounty_list().filter(status=BountyStatus.OPEN), "-amount")
    )

    assert "Seq Scan" not in node_types
    assert "bounty_status_amount_idx" in indexes


def test_owners_bounties_use_the_owner_index(many_bounties):
    owner = many_bounties[7]
    queryset = selectors.bounty_list().filter(status=BountyStatus.OPEN, owner_id=owner.pk)

    node_types, indexes = bounty_scans(first_page(queryset, "-created_at"))

    assert "Seq Scan" not in node_types
    assert "bounty_owner_created_idx" in indexes


def test_a_common_words_candidates_come_from_the_newest_rows_not_from_ranking_every_match(
    many_bounties, settings
):
    """SEARCH_RANK_CANDIDATES well below the matches (1,000 of ~50,000 * 2 %): the planner walks
    bounty_created_idx backwards until it has them, and ranks only those."""
    matches = selectors.bounty_search(text="kubernetes").filter(status=BountyStatus.OPEN)
    ranked = selectors.newest_matches(matches, 50).order_by("-rank")

    node_types, indexes = bounty_scans(ranked[:21])

    assert "Seq Scan" not in node_types
    assert "bounty_created_idx" in indexes or "bounty_status_created_idx" in indexes
    assert len(list(ranked[:21])) == 21


def test_full_text_search_uses_the_gin_index(many_bounties):
    queryset = selectors.bounty_search(text="kubernetes").filter(status=BountyStatus.OPEN)

    node_types, indexes = bounty_scans(first_page(queryset, "-rank"))

    assert "Seq Scan" not in node_types
    assert "bounty_search_gin" in indexes
    assert len(list(first_page(queryset, "-rank"))) == 21


def test_detail_is_a_primary_key_lookup(many_bounties):
    bounty_id = selectors.bounty_list().filter(status=BountyStatus.OPEN).values_list("pk", flat=True).first()

    node_types, indexes = bounty_scans(selectors.bounty_detail().filter(pk=bounty_id))

    assert "Seq Scan" not in node_types
    assert "bounties_bounty_pkey" in indexes

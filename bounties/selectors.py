"""Reads of bounties and applications. Each list decides here which columns it loads, next to
the serializer that consumes them (bounties/serializers.py)."""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import Count, F, FloatField, Q, QuerySet
from django.db.models.functions import Cast

from bounties.models import SEARCH_CONFIG, Bounty, BountyRequest, BountyStatus
from wallet.selectors import total_earned

# BountyListSerializer's fields: no description, no search vector.
LIST_FIELDS = (
    "id",
    "title",
    "amount",
    "is_for_honor",
    "category",
    "location",
    "work_type",
    "is_time_sensitive",
    "deadline",
    "status",
    "owner_id",
    "owner__username",
    "hunter_id",
    "view_count",
    "created_at",
)


def bounty_list() -> QuerySet[Bounty]:
    """Visible bounties as slim rows with the owner's username (one query per page)."""
    return Bounty.objects.select_related("owner").only(*LIST_FIELDS)


# websearch_to_tsquery turns each "-" of a run ("-----a", "- - - a") into one more nested NOT,
# and PostgreSQL cannot match a tsquery nested deeper than about 32 ("tsquery stack too small").
_MINUS_RUN = re.compile(r"-(?:\s*-)+")


def search_text_normalised(text: str) -> str:
    """``text`` with each run of minus signs made one "exclude" sign, as a person means it."""
    return _MINUS_RUN.sub("-", text)


def bounty_search(*, text: str) -> QuerySet[Bounty]:
    """Visible bounties matching ``text`` (web-search syntax), ranked: title above description.

    Filters on the stored search_vector column, which bounty_search_gin indexes.
    """
    query = SearchQuery(search_text_normalised(text), config=SEARCH_CONFIG, search_type="websearch")
    # ts_rank is a float4; as float8 its value survives the round trip through the page cursor
    # exactly, so "rank < cursor" never repeats the row the previous page ended on.
    rank = Cast(SearchRank(F("search_vector"), query), FloatField())
    return bounty_list().filter(search_vector=query).annotate(rank=rank)


def newest_matches(matches: QuerySet[Bounty], candidates: int) -> QuerySet[Bounty]:
    """``matches`` cut to its newest ``candidates`` rows, still ranked, for ordering by rank.

    Ranking every match costs time in proportion to the table: a common word matches one
    bounty in eight, 125,000 rows to ts_rank at 1M bounties. The newest N come from a backward
    scan of bounty_created_idx that stops after N matches (or, for a rare word, the GIN index
    and a sort of its few rows), so a search costs the same at 10k, 100k or 1M bounties. The
    price, stated in README: a search returns the best of its newest N matches.
    """
    newest = matches.order_by("-created_at").values("pk")[:candidates]
    return matches.filter(pk__in=newest)


# BountyDetailSerializer's fields: the list's and the long ones, with the hunter's username.
DETAIL_FIELDS = (*LIST_FIELDS, "hunter__username", "description", "skills_required", "updated_at")


def bounty_detail() -> QuerySet[Bounty]:
    """The detail's columns with the owner's and hunter's usernames: never the search vector,
    nor a user's other columns (a join selecting every column of two users costs Django 3.4 ms
    to compile against 1.2 ms for these; docs/perf/write-path.md)."""
    return Bounty.objects.select_related("owner", "hunter").only(*DETAIL_FIELDS)


REQUEST_FIELDS = (
    "id",
    "bounty_id",
    "bounty__title",
    "bounty__status",
    "hunter_id",
    "hunter__username",
    "message",
    "status",
    "created_at",
    "updated_at",
)


def requests() -> QuerySet[BountyRequest]:
    """Applications with their bounty's title and status and the hunter's username."""
    return BountyRequest.objects.select_related("bounty", "hunter").only(*REQUEST_FIELDS)


def requests_of_bounty(*, bounty_id: int) -> QuerySet[BountyRequest]:
    """A bounty's applications for its owner, newest first (request_bounty_status_idx)."""
    return requests().filter(bounty_id=bounty_id)


def requests_of_hunter(*, hunter_id: int, status: str | None = None) -> QuerySet[BountyRequest]:
    """A hunter's own applications, newest first (request_hunter_status_idx)."""
    queryset = requests().filter(hunter_id=hunter_id)
    if status:
        queryset = queryset.filter(status=status)
    return queryset


def user_stats(*, user_id: int) -> dict:
    """A user's marketplace figures in two queries: bounties through the owner and hunter
    indexes, earnings from the wallet (wallet.selectors.total_earned)."""
    completed = Q(status=BountyStatus.COMPLETED)
    counts = Bounty.objects.filter(Q(owner_id=user_id) | Q(hunter_id=user_id)).aggregate(
        bounties_posted=Count("pk", filter=Q(owner_id=user_id)),
        bounties_completed=Count("pk", filter=Q(owner_id=user_id) & completed),
        bounties_as_hunter=Count("pk", filter=Q(hunter_id=user_id)),
        hunter_completed=Count("pk", filter=Q(hunter_id=user_id) & completed),
    )
    return {"user_id": user_id, **counts, "total_earned": total_earned(user_id=user_id)}

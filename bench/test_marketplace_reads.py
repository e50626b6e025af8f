"""Server-side latency of the bounty list, detail and search at 50,000 bounties, warm database,
computed (response cache off) and served from the response cache.

In-process through the full stack (middleware, DRF, serializers, PostgreSQL) with Django's test
client, so the figures exclude the network and gunicorn; plus each query's own execution time
from EXPLAIN ANALYZE. Prints a table; asserts only that every response was a 200.
"""

from __future__ import annotations

import json
import statistics

import pytest
from rest_framework.test import APIClient

from bench.timing import percentile, timed
from bounties import selectors
from bounties.models import BountyStatus
from tests.factories import UserFactory
from tests.synthetic import insert_bounties

BOUNTIES = 50_000
ROUNDS = 300
SEARCH_TERMS = ["web", "mobile", "design", "data", "test"]


def execution_ms(queryset) -> float:
    runs = [json.loads(queryset.explain(format="json", analyze=True))[0] for _ in range(20)]
    return statistics.median(run["Execution Time"] for run in runs)


CACHE_TTLS = ("CACHE_TTL_BOUNTY_LIST", "CACHE_TTL_BOUNTY_DETAIL", "CACHE_TTL_SEARCH")


@pytest.mark.django_db
def test_bounty_reads_at_50k(settings):
    owners = UserFactory.create_batch(500)
    insert_bounties(count=BOUNTIES, owner_ids=[owner.pk for owner in owners])
    open_bounties = selectors.bounty_list().filter(status=BountyStatus.OPEN)
    open_ids = list(open_bounties.values_list("pk", flat=True)[:ROUNDS])
    client = APIClient()

    endpoints = {
        "list (open, limit 20)": ["/api/bounties?limit=20"] * ROUNDS,
        "detail": [f"/api/bounties/{pk}" for pk in open_ids],
        "search (5 terms, limit 20)": [
            f"/api/bounties/search?q={SEARCH_TERMS[i % 5]}&limit=20" for i in range(ROUNDS)
        ],
    }
    design = selectors.bounty_search(text="design").filter(status=BountyStatus.OPEN)
    queries = {
        "list (open, limit 20)": open_bounties.order_by("-created_at")[:21],
        "detail": selectors.bounty_detail().filter(pk=open_ids[0]),
        "search (5 terms, limit 20)": design.order_by("-rank")[:21],
    }

    print(f"\n\n{BOUNTIES:,} bounties, warm database, {ROUNDS} requests each after a warm-up")
    print(f"{'endpoint':<40}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'SQL exec ms':>13}")
    defaults = {name: getattr(settings, name) for name in CACHE_TTLS}
    for mode, cached in (("computed", False), ("cached", True)):
        for name in CACHE_TTLS:
            setattr(settings, name, defaults[name] if cached else 0)
        for name, urls in endpoints.items():
            # Cached: every URL is requested once untimed, so the timed requests are all hits.
            warmup = len(urls) if cached else 30
            measure(client, f"{name}, {mode}", urls, execution_ms(queries[name]), warmup)


def measure(client, label: str, urls: list[str], sql_ms: float, warmup: int) -> None:
    samples = timed(client, urls, warmup=warmup)
    figures = [
        percentile(samples, 50),
        percentile(samples, 95),
        percentile(samples, 99),
        statistics.fmean(samples),
    ]
    print(f"{label:<40}" + "".join(f"{value:>9.2f}" for value in figures) + f"{sql_ms:>13.3f}")

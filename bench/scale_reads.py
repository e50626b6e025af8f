"""Read latency of the bounty endpoints on a seeded database, computed (response cache off) and
cached, for the scale table (docs/perf/scale.md): run it once per database size.

    DATABASE_URL=postgres://.../bx_1m .venv/bin/python bench/scale_reads.py [--rounds 200]

Uses the database of DATABASE_URL as it is (load it with `manage.py seed_data --bounties N`);
reads only, except the view counts the detail requests add. In-process through the full stack
(middleware, DRF, serializers, PostgreSQL, Redis) with Django's test client, so the figures
exclude the network and gunicorn. The search is measured twice: as served
(SEARCH_RANK_CANDIDATES, default 200) and ranking every match (the naive way, the reference).
Prints one markdown table; asserts only that every response was a 200.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.timing import percentile, timed  # noqa: E402
from bounties.models import Bounty, BountyStatus  # noqa: E402
from core import response_cache  # noqa: E402

SEARCH_TERMS = ["web", "mobile", "design", "data", "test"]
CACHE_TTLS = ("CACHE_TTL_BOUNTY_LIST", "CACHE_TTL_BOUNTY_DETAIL", "CACHE_TTL_SEARCH")
EVERY_MATCH = 10**9


def endpoints(rounds: int) -> dict[str, list[str]]:
    rng = random.Random(42)  # noqa: S311 (a repeatable choice of URLs)
    open_ids = list(
        Bounty.objects.filter(status=BountyStatus.OPEN)
        .order_by("-created_at")
        .values_list("pk", flat=True)[:5000]
    )
    owners = list(
        Bounty.objects.filter(status=BountyStatus.OPEN)
        .order_by("-created_at")
        .values_list("owner_id", flat=True)
        .distinct()[:rounds]
    )
    return {
        "list (open, limit 20)": [
            "/api/bounties?limit=20" + (f"&category={c}" if (c := rng.choice(["", "web", "design"])) else "")
            for _ in range(rounds)
        ],
        "detail": [f"/api/bounties/{rng.choice(open_ids)}" for _ in range(rounds)],
        "owner's list": [f"/api/bounties?owner={owners[i % len(owners)]}&limit=20" for i in range(rounds)],
        "search (5 common words)": [
            f"/api/bounties/search?q={SEARCH_TERMS[i % 5]}&limit=20" for i in range(rounds)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed requests per endpoint (default 200)")
    args = parser.parse_args()
    bounties = Bounty.objects.count()
    urls = endpoints(args.rounds)
    client = APIClient()
    rows = []
    with override_settings(RATELIMIT_ENABLE=False, ALLOWED_HOSTS=["testserver"]):
        response_cache.clear_all()
        for mode in ("computed", "cached"):
            ttls = {name: (getattr(settings, name) if mode == "cached" else 0) for name in CACHE_TTLS}
            with override_settings(**ttls):
                for name, paths in urls.items():
                    variants = [("", settings.SEARCH_RANK_CANDIDATES)]
                    if name.startswith("search"):
                        variants.append((", ranking every match", EVERY_MATCH))
                    for suffix, candidates in variants:
                        with override_settings(SEARCH_RANK_CANDIDATES=candidates):
                            response_cache.clear_all()
                            # Cached: every URL once untimed first, so the timed requests are hits.
                            samples = timed(client, paths, warmup=len(paths) if mode == "cached" else 20)
                        rows.append((f"{name}{suffix}", mode, samples))
    connection.close()
    print(f"\n{bounties:,} bounties ({settings.DATABASES['default']['NAME']}), {args.rounds} requests each")
    print("\n| endpoint | mode | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    for name, mode, samples in rows:
        print(
            f"| {name} | {mode} | {percentile(samples, 50):.1f} | {percentile(samples, 95):.1f} "
            f"| {percentile(samples, 99):.1f} |"
        )


if __name__ == "__main__":
    main()

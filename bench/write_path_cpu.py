"""CPU time per request of the work a busy marketplace adds besides cache hits: posting a bounty
(validate, insert, escrow, write-through of its detail; also with the response cache on, so
its invalidation's Redis calls count) and computing a list page, a search page
and a detail with the response cache off (what every refresh and miss runs). In-process through
the WSGI handler (no server, no network), rate limits off; reads anonymous, each post signed in
with the next of the seed's tokens (as the churn profile's writers post);
each case in a fresh process, ROUNDS times alternately, medians printed. Only this process's CPU
is counted: PostgreSQL's and Redis's work is theirs.

    .venv/bin/python bench/write_path_cpu.py     (ROUNDS=3 REQUESTS=300 TOKENS=.local/loadtest/tokens.txt;
                                                  DATABASE_URL, REDIS_URL or .local/env; seed_data loaded.
                                                  Each round posts REQUESTS bounties.)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_rounds import cpu_rounds, print_cpu_per_request, wsgi_environ

ROOT = Path(__file__).resolve().parent.parent
# name: (method, path, query, response cache "on" or "off")
CASES = {
    "post a bounty": ("POST", "/api/bounties", "", "off"),
    "post a bounty, cache on (bumps, marks, write-through)": ("POST", "/api/bounties", "", "on"),
    "list page, computed": ("GET", "/api/bounties", "limit=20", "off"),
    "list page by category, computed": ("GET", "/api/bounties", "category=design&limit=20", "off"),
    "search page, computed": ("GET", "/api/bounties/search", "q=logo", "off"),
    "detail, computed": ("GET", "/api/bounties/{id}", "", "off"),
}
BODY = json.dumps(
    {
        "title": "Design work posted by the write-path benchmark",
        "description": "Posted by bench/write_path_cpu.py to measure what a post costs the server.",
        "amount": "5.00",
        "category": "design",
    }
).encode()


def child(method: str, path: str, query: str, cache: str, requests: int) -> None:
    if cache == "off":
        os.environ.update(CACHE_TTL_BOUNTY_LIST="0", CACHE_TTL_SEARCH="0", CACHE_TTL_BOUNTY_DETAIL="0")
    os.environ.update(
        RATELIMIT_ENABLE="0",
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None),  # noqa: S108
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from bounties.models import Bounty

    tokens_file = Path(os.environ.get("TOKENS", ROOT / ".local" / "loadtest" / "tokens.txt"))
    tokens = [line.split()[-1] for line in tokens_file.read_text().splitlines() if line.strip()]
    path = path.replace("{id}", str(Bounty.objects.order_by("-pk").values_list("pk", flat=True).first()))
    application = WSGIHandler()

    def environ_for(n: int) -> dict:
        if method == "GET":  # reads anonymous
            return wsgi_environ(method, path, query)
        return wsgi_environ(method, path, query, BODY, HTTP_AUTHORIZATION=f"Bearer {tokens[n % len(tokens)]}")

    # Warm: the pool, the code paths.
    print_cpu_per_request(application, environ_for, warm=30, requests=requests, ok=("200", "201"))


def main() -> None:
    rounds, requests = int(os.environ.get("ROUNDS", 3)), int(os.environ.get("REQUESTS", 300))
    micros = cpu_rounds(__file__, CASES, rounds, requests)
    print(f"\nmedian CPU per request over {rounds} rounds of {requests}:")
    print("| request | CPU us |")
    print("|---|---|")
    for name, values in micros.items():
        print(f"| {name} | {statistics.median(values):.0f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        main()

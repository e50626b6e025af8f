"""CPU time per request of what the mixed traffic's signed-in members read (peak's MemberUser:
wallet, transactions, conversations, a conversation's messages, their applications), computed
(the conversation list's response cache off: what every one of its misses runs). In-process
through the WSGI handler (no server, no network), rate limits off; each request signed in with
one of the first MEMBERS seeded tokens in turn (peak's 60 members keep one token each); every
case in a fresh process, ROUNDS times alternately, medians printed. Only this process's CPU is
counted: PostgreSQL's and Redis's work is theirs.

    .venv/bin/python bench/member_path_cpu.py   (ROUNDS=3 REQUESTS=300 MEMBERS=60
                                                 TOKENS=.local/loadtest/tokens.txt;
                                                 DATABASE_URL, REDIS_URL or .local/env; seed_data loaded)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_rounds import cpu_rounds, print_cpu_per_request, wsgi_environ

ROOT = Path(__file__).resolve().parent.parent
# name: (path, query); "{conversation}" is one of the member's own conversations
CASES = {
    "wallet": ("/api/wallet", ""),
    "wallet transactions": ("/api/wallet/transactions", "limit=20"),
    "conversation list, computed": ("/api/conversations", "limit=20"),
    "a conversation's messages": ("/api/conversations/{conversation}/messages", "limit=20"),
    "my applications": ("/api/requests", "limit=20"),
}


def child(path: str, query: str, requests: int) -> None:
    os.environ.update(
        RATELIMIT_ENABLE="0",
        CACHE_TTL_CONVERSATIONS="0",
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None),  # noqa: S108
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from messaging.models import Participant

    tokens_file = Path(os.environ.get("TOKENS", ROOT / ".local" / "loadtest" / "tokens.txt"))
    lines = [line.split() for line in tokens_file.read_text().splitlines() if line.strip()]
    members = [(int(user_id), token) for user_id, token in lines[: int(os.environ.get("MEMBERS", 60))]]
    conversation_of = dict(
        Participant.objects.filter(user_id__in=[user_id for user_id, _ in members])
        .order_by("user_id", "-conversation_id")
        .distinct("user_id")
        .values_list("user_id", "conversation_id")
    )
    members = [member for member in members if member[0] in conversation_of] or members
    application = WSGIHandler()

    def environ_for(n: int) -> dict:
        user_id, token = members[n % len(members)]
        url = path.replace("{conversation}", str(conversation_of.get(user_id, 0)))
        return wsgi_environ("GET", url, query, HTTP_AUTHORIZATION=f"Bearer {token}")

    print_cpu_per_request(application, environ_for, warm=60, requests=requests, ok=("200",))


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
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()

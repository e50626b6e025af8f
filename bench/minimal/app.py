"""The reference for "how fast can Django answer at all" on this machine: one Django view, no
middleware, no database, no apps, returning 20 rows of fixed JSON about the size of a bounty
list page. Served by gunicorn with the API's worker class and threads (not its config file,
whose hooks load the project):

    .venv/bin/gunicorn --bind 127.0.0.1:8111 --workers 5 --worker-class gthread --threads 4 \
        --chdir bench/minimal app

bench/wrk/vs_minimal.sh starts it so beside the API and compares them in the same run.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="minimal-benchmark-app-serves-fixed-json",  # noqa: S106 (no secrets here)
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
)

ROWS = [
    {
        "id": 100_000 - n,
        "title": f"Fixed benchmark bounty number {n}",
        "amount": "125.00",
        "is_for_honor": False,
        "category": "design",
        "location": "Remote",
        "work_type": "online",
        "status": "open",
        "deadline": "2026-12-31T12:00:00Z",
        "owner": {"id": n, "username": f"owner{n}", "avatar_url": ""},
        "created_at": "2026-11-27T12:00:00Z",
    }
    for n in range(20)
]
BODY = json.dumps({"next": None, "previous": None, "results": ROWS}).encode()


def bounties(request):
    return HttpResponse(BODY, content_type="application/json")


urlpatterns = [path("api/bounties", bounties)]
application = get_wsgi_application()

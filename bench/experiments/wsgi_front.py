"""An experiment, not served code: how fast could a cache hit be if it skipped Django's handler
and every middleware, answering at the WSGI level around the API? It reuses the hit path's own
round trip (core.hit_path.HitPathMiddleware._short) and adds by hand the headers the middleware
outside it would write (request id, rate-limit state, security headers) and the two request
metrics; it leaves out gzip and error handling, so it is a lower bound on what such a front
would cost, not a design. bench/experiments/cpu_split.sh serves it beside the minimal Django
app and the API (docs/perf/hit-path-after.md, "How far a WSGI front would go").
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bountyexpo.settings")

from django.core.handlers.wsgi import WSGIRequest
from django.core.wsgi import get_wsgi_application

django_application = get_wsgi_application()

from core import metrics  # noqa: E402
from core.hit_path import HitPathMiddleware  # noqa: E402
from core.instrumentation import route_of  # noqa: E402

_hit_path = HitPathMiddleware(None)
_SECURITY = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]


def application(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":
        start = time.perf_counter()
        request = WSGIRequest(environ)
        route, match = _hit_path._match(request)
        if route is not None:
            response, _outcome = _hit_path._short(request, route, match)
            if response is not None:
                headers = [*response.items(), ("X-Request-ID", os.urandom(16).hex())]
                state = getattr(request, "rate_limit", None)
                if state is not None:
                    headers += [
                        ("X-RateLimit-Limit", str(state.limit)),
                        ("X-RateLimit-Remaining", str(state.remaining)),
                        ("X-RateLimit-Reset", str(state.reset)),
                    ]
                start_response(f"{response.status_code} {response.reason_phrase}", headers + _SECURITY)
                labels = ("GET", route_of(request), f"{response.status_code // 100}xx")
                metrics.HTTP_REQUEST_DURATION.labels(*labels).observe((time.perf_counter() - start) * 1000)
                metrics.HTTP_REQUESTS.labels(*labels).inc()
                return [response.content]
    return django_application(environ, start_response)

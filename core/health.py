"""Liveness and readiness probes for load balancers and orchestrators.

They sit outside authentication and the API rate limits: a probe must never be refused.
"""

from __future__ import annotations

import logging

from django.db import connection
from django_redis import get_redis_connection
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.db import replicas
from core.errors import error_body

logger = logging.getLogger("bountyexpo.health")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    # The raw client, not the cache API: django-redis's IGNORE_EXCEPTIONS would hide an outage.
    get_redis_connection("default").ping()


READINESS_CHECKS = {"database": _check_database, "redis": _check_redis}


class ProbeView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []  # never rate-limited


@extend_schema(exclude=True)
class HealthzView(ProbeView):
    """The process is up and serving; touches no dependency."""

    def get(self, request):
        return Response({"status": "ok"})


@extend_schema(exclude=True)
class ReadyzView(ProbeView):
    """Database and Redis both answer; 503 naming each one that does not."""

    def get(self, request):
        failures: dict[str, str] = {}
        for name, check in READINESS_CHECKS.items():
            try:
                check()
            except Exception as exc:  # any failure of a dependency means "not ready"
                logger.warning("Readiness check %s failed: %s", name, exc)
                failures[name] = f"{type(exc).__name__}: {exc}"
        if failures:
            message = "Not ready: " + ", ".join(f"{name} unreachable" for name in failures) + "."
            return Response(error_body("not_ready", message, failures), status=503)
        body = {"status": "ready", "checks": {name: "ok" for name in READINESS_CHECKS}}
        if replicas.replica_aliases():
            # Reported, never failing: reads fall back to the primary while a replica is out.
            body["replicas"] = replicas.readiness()
        return Response(body)

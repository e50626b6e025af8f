"""A URLconf for error-handling tests: the project's URLs plus views that fail on purpose."""

import json

from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import include, path
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class CrashingApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("secret internals: password=hunter2")


class CrashingWriteApiView(APIView):
    """Fails with the posted email address in the exception, as a bug in a real write would."""

    permission_classes = [AllowAny]

    def post(self, request):
        raise RuntimeError(f"could not notify {request.data['email']}")


class ThrottledApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise Throttled(wait=42)


def crashing_django_view(request) -> HttpResponse:
    raise RuntimeError("secret internals outside DRF")


def crashing_django_write_view(request) -> HttpResponse:
    raise RuntimeError(f"could not notify {json.loads(request.body)['email']} outside DRF")


def _slow_query() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 50")
        cursor.execute("SELECT pg_sleep(2)")


class SlowQueryApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        _slow_query()
        return HttpResponse("unreachable")


def slow_query_django_view(request) -> HttpResponse:
    _slow_query()
    return HttpResponse("unreachable")


urlpatterns = [
    path("test/crash", CrashingApiView.as_view()),
    path("test/throttled", ThrottledApiView.as_view()),
    path("test/crash-plain", crashing_django_view),
    path("test/crash-write", CrashingWriteApiView.as_view()),
    path("test/crash-write-plain", crashing_django_write_view),
    path("test/slow-query", SlowQueryApiView.as_view()),
    path("test/slow-query-plain", slow_query_django_view),
    path("", include("bountyexpo.urls")),
]

handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"

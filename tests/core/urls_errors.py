"""A URLconf for error-handling tests: the project's URLs plus views that fail on purpose."""

from django.http import HttpResponse
from django.urls import include, path
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class CrashingApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("secret internals: password=hunter2")


class ThrottledApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise Throttled(wait=42)


def crashing_django_view(request) -> HttpResponse:
    raise RuntimeError("secret internals outside DRF")


urlpatterns = [
    path("test/crash", CrashingApiView.as_view()),
    path("test/throttled", ThrottledApiView.as_view()),
    path("test/crash-plain", crashing_django_view),
    path("", include("bountyexpo.urls")),
]

handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"

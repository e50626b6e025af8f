from django.urls import path
from rest_framework.routers import SimpleRouter

from bounties import views

router = SimpleRouter(trailing_slash=False)
router.register("bounties", views.BountyViewSet, basename="bounty")
router.register("requests", views.RequestViewSet, basename="request")

urlpatterns = [
    path("profiles/<int:pk>/stats", views.ProfileStatsView.as_view(), name="profile-stats"),
    path(
        "bounties/<int:bounty_pk>/requests",
        views.BountyRequestsView.as_view({"get": "list", "post": "create"}),
        name="bounty-requests",
    ),
    *router.urls,
]

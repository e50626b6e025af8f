from django.urls import path
from rest_framework.routers import SimpleRouter

from messaging import views

router = SimpleRouter(trailing_slash=False)
router.register("conversations", views.ConversationViewSet, basename="conversation")

urlpatterns = [
    path(
        "conversations/<int:conversation_pk>/messages",
        views.MessageViewSet.as_view({"get": "list", "post": "create"}),
        name="conversation-messages",
    ),
    *router.urls,
]

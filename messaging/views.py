from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core import response_cache
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.pagination import CursorPagination
from messaging import selectors, services
from messaging.caching import CONVERSATION_LIST
from messaging.serializers import (
    ConversationCreateSerializer,
    ConversationSerializer,
    MessageCreateSerializer,
    MessageSerializer,
)


def _participating(user_id: int, conversation_id: int) -> int:
    """The conversation's id when the user takes part in it; 404 otherwise (unknown or not theirs
    alike: anyone else's conversations are invisible)."""
    if not selectors.takes_part(conversation_id=conversation_id, user_id=user_id):
        raise Http404
    return conversation_id


class ActivityPagination(CursorPagination):
    ordering = "-updated_at"


class ConversationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """My conversations, latest activity first; only participants see a conversation."""

    serializer_class = ConversationSerializer
    pagination_class = ActivityPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.conversations_of(user_id=self.request.user.pk)

    def list(self, request, *args, **kwargs):
        """Cached per user and query (CACHE_TTL_CONVERSATIONS); anything that changes a page moves
        the user's counter first (messaging/caching.py). X-Cache tells hit, stale or miss."""

        def compute() -> dict:
            # The queryset's page in one written-out statement (selectors.ConversationPage).
            page = self.paginate_queryset(selectors.ConversationPage(user_id=request.user.pk))
            return self.get_paginated_response(self.get_serializer(page, many=True).data).data

        parts = (request.user.pk, *response_cache.request_parts(request))
        return response_cache.cached_response(request, CONVERSATION_LIST, parts, compute)

    def _conversation_id(self, pk) -> int:
        return _participating(self.request.user.pk, int(pk))  # pk: digits (lookup_value_regex)

    def _one(self, conversation_id: int, status_code: int = status.HTTP_200_OK) -> Response:
        conversation = self.get_queryset().get(pk=conversation_id)
        return Response(ConversationSerializer(conversation).data, status=status_code)

    @extend_schema(
        request=ConversationCreateSerializer,
        responses={201: ConversationSerializer, 200: ConversationSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request):
        """Open a conversation; a 1:1 one for the same pair and bounty is reused (200)."""
        serializer = ConversationCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        conversation, created = services.conversation_open(
            created_by=request.user.pk,
            participant_ids=data["participant_ids"],
            bounty_id=data.get("bounty"),
            name=data["name"],
        )
        return self._one(conversation.pk, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: ConversationSerializer})
    @action(detail=True, methods=["post"])
    def read(self, request, pk):
        conversation_id = self._conversation_id(pk)
        services.conversation_mark_read(conversation_id=conversation_id, user_id=request.user.pk)
        return self._one(conversation_id)


class MessageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """/api/conversations/{id}/messages: newest first; participants only (404 otherwise)."""

    serializer_class = MessageSerializer
    pagination_class = CursorPagination

    def _conversation_id(self) -> int:
        # conversation_pk is an int already (the route's converter)
        return _participating(self.request.user.pk, self.kwargs["conversation_pk"])

    def get_queryset(self):
        return selectors.messages_of(conversation_id=self._conversation_id())

    @extend_schema(
        request=MessageCreateSerializer,
        responses={201: MessageSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request, conversation_pk):
        conversation_id = self._conversation_id()
        serializer = MessageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = services.message_send(
            conversation_id=conversation_id, sender_id=request.user.pk, text=serializer.validated_data["text"]
        )
        # The row as inserted holds every field the answer shows, and its sender is the caller
        # (whose cached username a rename evicts): no read back, as a bounty's post.
        message.sender = request.user
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

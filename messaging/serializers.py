from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.serializers import ModelSerializer
from messaging.models import Conversation, Message

MAX_PARTICIPANTS = 50


class ParticipantSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="user_id")
    username = serializers.CharField(source="user.username")
    avatar_url = serializers.CharField(source="user.avatar_url")


class LastMessageSerializer(serializers.Serializer):
    """The conversation's last message; null until its first message."""

    # Read from the conversation's own columns (ConversationSerializer nests it with source="*").

    text = serializers.CharField(source="last_message_preview")
    sender_id = serializers.IntegerField(source="last_message_sender_id", allow_null=True)
    # The sender's account may be gone (SET_NULL): both sender fields can be null.
    sender_username = serializers.CharField(
        source="last_message_sender.username", default=None, allow_null=True
    )
    created_at = serializers.DateTimeField(source="last_message_at")

    def to_representation(self, conversation):
        if conversation.last_message_at is None:
            return None
        return super().to_representation(conversation)


class ConversationSerializer(ModelSerializer):
    """A conversation as its participants see it; fields by selectors.conversations_of."""

    participants = ParticipantSerializer(many=True, read_only=True)
    # One nested serializer for every row of a page: a method field building its own serializer
    # per row spent 40 % of a conversation page's serialising on copying that one's fields.
    last_message = LastMessageSerializer(source="*", read_only=True, allow_null=True)
    unread_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "bounty_id",
            "is_group",
            "name",
            "created_by_id",
            "created_at",
            "updated_at",
            "participants",
            "last_message",
            "unread_count",
        ]
        read_only_fields = fields


class ConversationCreateSerializer(serializers.Serializer):
    participant_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=MAX_PARTICIPANTS
    )
    bounty = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")

    def validate_participant_ids(self, value: list[int]) -> set[int]:
        wanted = set(value) - {self.context["request"].user.pk}
        if not wanted:
            raise serializers.ValidationError("Name at least one participant besides yourself.")
        found = set(
            get_user_model().objects.filter(pk__in=wanted, is_active=True).values_list("pk", flat=True)
        )
        if missing := sorted(wanted - found):
            raise serializers.ValidationError(f"No such users: {', '.join(map(str, missing))}.")
        return wanted

    def validate_bounty(self, value: int | None) -> int | None:
        # The bounty model by way of the foreign key: messaging does not import bounties.
        bounties = Conversation._meta.get_field("bounty").related_model.objects
        if value is not None and not bounties.filter(pk=value).exists():
            raise serializers.ValidationError("No such bounty.")
        return value


class MessageSerializer(ModelSerializer):
    sender_username = serializers.CharField(source="sender.username", read_only=True)

    class Meta:
        model = Message
        fields = ["id", "conversation_id", "sender_id", "sender_username", "text", "created_at"]
        read_only_fields = fields


class MessageCreateSerializer(serializers.Serializer):
    # DRF trims surrounding whitespace first, so a blank message is refused as blank.
    text = serializers.CharField(min_length=1, max_length=5000)

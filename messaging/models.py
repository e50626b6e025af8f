from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

PREVIEW_LENGTH = 200


class Conversation(models.Model):
    """A thread between users, optionally about a bounty.

    The last message is copied here (preview, sender, time) when it is posted, so the
    conversation list needs no per-row lookup of the latest message.
    """

    bounty = models.ForeignKey(
        "bounties.Bounty", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    is_group = models.BooleanField(default=False)
    name = models.CharField(max_length=120, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # "<smaller user id>:<larger user id>" for a 1:1 conversation, empty for a group.
    pair_key = models.CharField(max_length=41, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by every new message: the list's "latest activity first" order.
    updated_at = models.DateTimeField(auto_now_add=True)
    last_message_preview = models.CharField(max_length=PREVIEW_LENGTH, blank=True)
    last_message_sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # conversations by latest activity (admin, and the list's sort after the user filter)
            models.Index(fields=["-updated_at"], name="conversation_updated_idx"),
        ]
        constraints = [
            # one 1:1 conversation per pair of users and bounty (no bounty counts as one value):
            # the reuse lookup on POST /api/conversations, and the guard against a double create
            models.UniqueConstraint(
                fields=["pair_key", "bounty"],
                condition=Q(is_group=False),
                nulls_distinct=False,
                name="conversation_one_direct_per_pair",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"conversation #{self.pk}"


class Participant(models.Model):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="participants", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    joined_at = models.DateTimeField(auto_now_add=True)
    last_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # participants by user: "my conversations", and the participant check on every call
            models.Index(fields=["user", "conversation"], name="participant_user_conv_idx"),
        ]
        constraints = [
            # a conversation's participants (prefetch), one row per user and conversation
            models.UniqueConstraint(fields=["conversation", "user"], name="participant_once"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} in conversation {self.conversation_id}"


class Message(models.Model):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    text = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # a conversation's messages, newest first (messages page, unread counts)
            models.Index(fields=["conversation", "-created_at"], name="message_conv_created_idx"),
            # guide: messages(created_at desc); recent activity across conversations, admin
            models.Index(fields=["-created_at"], name="message_created_idx"),
        ]

    def __str__(self) -> str:
        return f"message #{self.pk} in conversation {self.conversation_id}"

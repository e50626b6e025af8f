"""Conversations and messages in the admin, searchable without scanning the message table.

Messages (a million and more) are searched by id anywhere, and by text only inside one
conversation: ``message_conv_created_idx`` narrows the scan to that conversation's rows, while
a text search over every message would read the whole table (no text index exists for it).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from messaging.models import Conversation, Message, Participant

# The message list's conversation filter (set by the links below); kept by the search box.
CONVERSATION_PARAM = "conversation__id__exact"
# Ids are bigint; a longer number cannot be one (and would overflow the comparison).
MAX_ID_DIGITS = 18


def _as_id(term: str) -> int | None:
    term = term.removeprefix("#")
    return int(term) if term.isdigit() and len(term) <= MAX_ID_DIGITS else None


def messages_url(conversation_id: int) -> str:
    return f"{reverse('admin:messaging_message_changelist')}?{CONVERSATION_PARAM}={conversation_id}"


class ParticipantInline(admin.TabularInline):
    model = Participant
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "is_group",
        "bounty_id",
        "updated_at",
        "last_message_preview",
        "messages_link",
    )
    list_filter = ("is_group",)
    raw_id_fields = ("bounty", "created_by", "last_message_sender")
    readonly_fields = ("messages_link",)
    inlines = [ParticipantInline]
    ordering = ("-updated_at",)
    # Shows the search box; get_search_results decides what matches.
    search_fields = ("name",)
    search_help_text = "Part of the conversation's name, a participant's exact username (any case), or an id."
    show_full_result_count = False

    @admin.display(description="messages")
    def messages_link(self, conversation: Conversation) -> str:
        return format_html('<a href="{}">messages</a>', messages_url(conversation.pk))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        """Name (ILIKE over the conversations, tens of thousands of short rows), participant
        (UPPER(username) = UPPER(term) through user_username_ci_uniq, then
        participant_user_conv_idx: computed once, as a hashed subplan), or id (primary key)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_participant = Participant.objects.filter(user__username__iexact=term).values("conversation_id")
        condition = Q(name__icontains=term) | Q(pk__in=by_participant)
        conversation_id = _as_id(term)
        if conversation_id is not None:
            condition |= Q(pk=conversation_id)
        return queryset.filter(condition), False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation_link", "sender", "created_at")
    list_select_related = ("sender",)
    raw_id_fields = ("conversation", "sender")
    ordering = ("-created_at",)
    # Shows the search box; get_search_results decides what matches.
    search_fields = ("text",)
    search_help_text = (
        "A number (or #number) finds the message with that id. Words search the text of one "
        "conversation's messages: open them from a conversation (its messages link, or the "
        "conversation column here), then search."
    )
    show_full_result_count = False

    @admin.display(description="conversation")
    def conversation_link(self, message: Message) -> str:
        conversation_id = message.conversation_id
        return format_html('<a href="{}">#{}</a>', messages_url(conversation_id), conversation_id)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        """An id anywhere (primary key); text only within the conversation filter, where the
        ILIKE reads that conversation's rows through message_conv_created_idx."""
        term = search_term.strip()
        if not term:
            return queryset, False
        message_id = _as_id(term)
        in_conversation = bool(request.GET.get(CONVERSATION_PARAM))
        if not in_conversation:
            if message_id is None:
                self.message_user(
                    request,
                    "Text is searched within one conversation (a million messages have no text "
                    "index): open the conversation's messages first, or search a message id.",
                    messages.WARNING,
                )
                return queryset.none(), False
            return queryset.filter(pk=message_id), False
        condition = Q(text__icontains=term)
        if message_id is not None:
            condition |= Q(pk=message_id)
        return queryset.filter(condition), False

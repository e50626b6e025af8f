from django.contrib import admin

from messaging.models import Conversation, Message, Participant


class ParticipantInline(admin.TabularInline):
    model = Participant
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "is_group", "bounty_id", "updated_at", "last_message_preview")
    list_filter = ("is_group",)
    raw_id_fields = ("bounty", "created_by", "last_message_sender")
    inlines = [ParticipantInline]
    ordering = ("-updated_at",)
    show_full_result_count = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation_id", "sender", "created_at")
    list_select_related = ("sender",)
    raw_id_fields = ("conversation", "sender")
    ordering = ("-created_at",)
    show_full_result_count = False

from django.contrib import admin

from bounties.models import Bounty, BountyRequest


@admin.register(Bounty)
class BountyAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "owner",
        "status",
        "amount",
        "is_for_honor",
        "view_count",
        "created_at",
        "deleted_at",
    )
    list_filter = ("status", "category", "work_type", "is_for_honor")
    list_select_related = ("owner",)
    search_fields = ("title",)
    raw_id_fields = ("owner", "hunter")
    readonly_fields = ("view_count", "created_at", "updated_at", "deleted_at")
    exclude = ("search_vector",)
    ordering = ("-created_at",)
    # COUNT(*) over every bounty on each page view costs more than the page itself.
    show_full_result_count = False

    def get_queryset(self, request):
        # Staff see bounties deleted through the API too (their ledger rows point at them).
        return Bounty.all_objects.select_related("owner").defer("search_vector", "description")


@admin.register(BountyRequest)
class BountyRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "bounty", "hunter", "status", "created_at")
    list_filter = ("status",)
    list_select_related = ("bounty", "hunter")
    raw_id_fields = ("bounty", "hunter")
    ordering = ("-created_at",)
    show_full_result_count = False

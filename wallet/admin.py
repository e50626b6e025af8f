"""The ledger is read-only here: money moves only through wallet.services, which keep the
invariants (check_ledger verifies them)."""

from django.contrib import admin

from wallet.models import WalletAccount, WalletTransaction


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WalletAccount)
class WalletAccountAdmin(ReadOnlyAdmin):
    list_display = ("user", "balance", "updated_at")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    ordering = ("-balance",)
    show_full_result_count = False


@admin.register(WalletTransaction)
class WalletTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "type", "amount", "status", "bounty_id", "reference", "created_at")
    list_filter = ("type", "status")
    list_select_related = ("user",)
    search_fields = ("reference", "user__username")
    ordering = ("-created_at",)
    show_full_result_count = False

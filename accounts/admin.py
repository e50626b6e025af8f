from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models

from accounts.models import AuthToken, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Profile", {"fields": ("display_name", "avatar_url", "bio", "location", "skills")}),
    )
    list_display = ("username", "email", "display_name", "is_staff", "is_active", "date_joined")
    # Django 6 makes https the scheme a bare host gets; say so now rather than warn.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ("short_hash", "user", "created_at", "expires_at")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("key_hash", "user", "created_at", "expires_at")
    ordering = ("-created_at",)

    @admin.display(description="token hash")
    def short_hash(self, obj: AuthToken) -> str:
        return f"{obj.key_hash[:12]}…"

    def has_add_permission(self, request) -> bool:
        return False

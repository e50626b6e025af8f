from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    name = "core"
    default = True  # "core" in INSTALLED_APPS means this one, not the admin's config below

    def ready(self) -> None:
        from core import metrics
        from core.logging import install_quiet_checkouts

        # Alerts divide by these series: they must exist (at 0) before the first event.
        metrics.create_zero_series()
        install_quiet_checkouts()


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, served by core.admin_site.AdminSite (throttled login)."""

    default = False
    default_site = "core.admin_site.AdminSite"

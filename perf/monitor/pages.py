"""How a monitor page lives in the Django admin.

Each page is an unmanaged model in ``perf.models`` (no table), registered with a subclass of
``MonitorPageAdmin`` whose changelist is the page: it appears under "Perf" on the admin index,
its URL is ``/admin/perf/<model>/``, and the admin's login, CSRF and staff checks guard it.
A page subclass sets ``template_name`` and builds its context in ``page_context``; actions
that change something (cancel a query, reset statistics, invalidate a cache family) go
through ``confirm``: a confirmation page on GET, the action on POST, an admin log entry
naming the staff user and what was done.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse


class Level(enum.StrEnum):
    """A check's colour on the overview and in tables."""

    OK = "ok"  # green
    WARNING = "warning"  # amber
    CRITICAL = "critical"  # red
    UNKNOWN = "unknown"  # grey: could not be measured (a timeout, no data yet)


def level_for(value: float | None, *, warning: float, critical: float, higher_is_worse: bool = True) -> Level:
    """The level of ``value`` against two thresholds (``>=`` for higher-is-worse, ``<=`` else)."""
    if value is None:
        return Level.UNKNOWN
    if higher_is_worse:
        return Level.CRITICAL if value >= critical else Level.WARNING if value >= warning else Level.OK
    return Level.CRITICAL if value <= critical else Level.WARNING if value <= warning else Level.OK


class ActionFailed(Exception):
    """Raised by a ``confirm`` action that could not do what was asked: the staff user sees an
    error, and the admin log records the attempt as failed."""


class MonitorPageAdmin(admin.ModelAdmin):
    """The changelist of an unmanaged model, shown as a page to staff; nothing to add or edit."""

    template_name: str = ""
    # Order on the admin index and in the pages' navigation.
    order: int = 100

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        """What the page shows; subclasses read the catalogs here."""
        raise NotImplementedError

    def base_context(self, request: HttpRequest) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": self.model._meta.verbose_name_plural.capitalize(),
            "monitor_pages": monitor_pages(self.admin_site, request),
        }

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.base_context(request), **self.page_context(request), **(extra_context or {})}
        return TemplateResponse(request, self.template_name, context)

    def page_url(self) -> str:
        opts = self.model._meta
        return reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")

    def log_action(self, request: HttpRequest, *, object_id: str, object_repr: str, message: str) -> None:
        """An admin log entry (Recent actions, and the LogEntry table) for an action taken here."""
        # No model row to name (the page's model has no table): the entry is written directly.
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(self.model, for_concrete_model=False),
            object_id=object_id[:255],
            object_repr=object_repr[:200],
            action_flag=CHANGE,
            change_message=message,
        )

    def confirm(
        self,
        request: HttpRequest,
        *,
        title: str,
        question: str,
        details: list[tuple[str, Any]],
        perform: Callable[[], str],
        object_id: str,
        object_repr: str,
        danger: bool = False,
    ) -> HttpResponse:
        """GET: a page asking to confirm. POST: ``perform()`` (returns what happened, or raises
        ActionFailed saying why not), logged either way, then back to the page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            try:
                outcome, level = perform(), messages.SUCCESS
            except ActionFailed as failure:
                outcome, level = f"FAILED: {failure}", messages.ERROR
            self.log_action(request, object_id=object_id, object_repr=object_repr, message=outcome)
            self.message_user(request, outcome, level)
            return HttpResponseRedirect(self.page_url())
        context = {
            **self.base_context(request),
            "title": title,
            "question": question,
            "details": details,
            "danger": danger,
            "back_url": self.page_url(),
        }
        return TemplateResponse(request, "admin/perf/monitor/confirm.html", context)


def monitor_pages(site: admin.AdminSite, request: HttpRequest) -> list[dict[str, Any]]:
    """The navigation between monitor pages, in their order."""
    pages = [
        (model_admin.order, model._meta.verbose_name_plural.capitalize(), model_admin.page_url())
        for model, model_admin in site._registry.items()
        if isinstance(model_admin, MonitorPageAdmin) and model_admin.has_view_permission(request)
    ]
    return [{"title": title, "url": url, "current": request.path == url} for _, title, url in sorted(pages)]

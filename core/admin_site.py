"""The project's admin site: Django's, with its login throttled like the API's sign-in.

Wrong passwords count per client IP and per username (any case), each limited to
``RATELIMIT_AUTH`` (default 5 per 15 minutes): the IP limit slows one machine guessing many
accounts, the username limit slows many machines guessing one. Only failed attempts count,
so a staff member who signs in correctly is never locked out by their own successes. Over the
limit, the login page answers 429 with ``Retry-After`` and does not check the password at all.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from core import ratelimit


class AdminSite(admin.AdminSite):
    site_header = "BountyExpo administration"
    site_title = "BountyExpo admin"

    def admin_view(self, view, cacheable=False):
        """Django sends anyone without admin access to the login page; a signed-in user who is
        not staff gets 403 instead: signing in again would not help them."""
        guarded = super().admin_view(view, cacheable)

        @wraps(view)
        def inner(request, *args, **kwargs):
            if request.user.is_authenticated and not (request.user.is_active and request.user.is_staff):
                raise PermissionDenied
            return guarded(request, *args, **kwargs)

        return inner

    def login(self, request, extra_context=None):
        if request.method != "POST":
            return super().login(request, extra_context)
        username = request.POST.get("username", "")
        wait = ratelimit.sign_in_wait(request, username=username)
        if wait:
            response = TemplateResponse(
                request,
                "admin/login_throttled.html",
                {**self.each_context(request), "title": "Too many attempts", "minutes": -(-wait // 60)},
                status=429,
            )
            response["Retry-After"] = str(wait)
            response.error_code = (
                "throttled"  # as the API's 429s; the metrics' error_type (core.instrumentation)
            )
            return response
        response = super().login(request, extra_context)
        # A successful sign-in redirects; the form shown again with an error is a failure.
        if response.status_code == 200 and not request.user.is_authenticated:
            ratelimit.sign_in_failed(request, username=username)
        return response

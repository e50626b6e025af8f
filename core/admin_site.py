"""The project's admin site: Django's, with its login throttled like the API's sign-in.

Wrong passwords count per client IP and per username (any case), each limited to
``RATELIMIT_AUTH`` (default 5 per 15 minutes): the IP limit slows one machine guessing many
accounts, the username limit slows many machines guessing one. Only failed attempts count,
so a staff member who signs in correctly is never locked out by their own successes. Over the
limit, the login page answers 429 with ``Retry-After`` and does not check the password at all.
"""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from core import ratelimit


class AdminSite(admin.AdminSite):
    site_header = "BountyExpo administration"
    site_title = "BountyExpo admin"

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
            return response
        response = super().login(request, extra_context)
        # A successful sign-in redirects; the form shown again with an error is a failure.
        if response.status_code == 200 and not request.user.is_authenticated:
            ratelimit.sign_in_failed(request, username=username)
        return response

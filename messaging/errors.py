"""The messaging domain's errors: each a stable ``code`` and HTTP status in the API's error shape
(core.errors)."""

from __future__ import annotations

from core.errors import DomainError


class NoOtherParticipant(DomainError):
    default_code = "no_other_participant"
    default_detail = "A conversation needs someone besides you."

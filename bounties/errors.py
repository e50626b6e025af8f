"""The bounties domain's errors: each a stable ``code`` and HTTP status in the API's error shape
(core.errors). README's table of error codes is checked against these modules
(tests/core/test_error_codes.py)."""

from __future__ import annotations

from rest_framework import status

from bounties.models import MAX_PENDING_REQUESTS
from core.errors import DomainError


class BountyNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Not found."


class NotBountyOwner(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "not_bounty_owner"
    default_detail = "Only the bounty's owner can do this."


class IllegalTransition(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "illegal_transition"
    default_detail = "The bounty's status does not allow this."


class BountyNotEditable(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "bounty_not_editable"
    default_detail = "Completed, cancelled and archived bounties cannot be edited."


class BountyNotOpen(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "bounty_not_open"
    default_detail = "This bounty is no longer open."


class OwnBounty(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "own_bounty"
    default_detail = "You cannot apply to your own bounty."


class AlreadyApplied(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_applied"
    default_detail = "You have already applied to this bounty."


class TooManyPendingRequests(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "too_many_pending_requests"
    default_detail = f"You already have {MAX_PENDING_REQUESTS} pending applications; wait or withdraw one."


class NotApplicant(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "not_applicant"
    default_detail = "Only the applicant can do this."


class RequestNotPending(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "request_not_pending"
    default_detail = "This application is no longer pending."


class InvalidSearchQuery(DomainError):
    default_code = "invalid_query"
    default_detail = "PostgreSQL cannot run this search; simplify it (fewer operators)."

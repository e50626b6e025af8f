"""The wallet's errors: each a stable ``code`` and HTTP status in the API's error shape (core.errors)."""

from __future__ import annotations

from rest_framework import status

from core.errors import DomainError
from wallet.models import MIN_WITHDRAWAL


class InsufficientFunds(DomainError):
    default_code = "insufficient_funds"
    default_detail = "Your available balance is too low for this."


class WithdrawalTooSmall(DomainError):
    default_code = "withdrawal_below_minimum"
    default_detail = f"The minimum withdrawal is {MIN_WITHDRAWAL}."


class DuplicateDepositReference(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "duplicate_reference"
    default_detail = "A deposit with this payment reference was already credited."


class EscrowAlreadySettled(DomainError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "escrow_already_settled"
    default_detail = "This bounty's escrow was already released or refunded."

from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a request sent with an ``Idempotency-Key``, per user and key.

    Written in the same transaction as the request's effect: either both exist or neither.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and canonical body: the same key with another body is refused.
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    # Kept as text, not jsonb, so a replay returns the same bytes in the same key order.
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # the replay lookup, and the lock concurrent repeats queue on
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_uniq"),
        ]
        indexes = [
            # purge_idempotency_keys: records older than the retention period
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
        ]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of user {self.user_id}"

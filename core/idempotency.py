"""``Idempotency-Key`` support for creating and money-moving POSTs.

A repeat with the same key and body returns the first response and changes nothing; the same
key with a different body gets 422. Keys are scoped per user. The record is inserted with
ON CONFLICT DO NOTHING in the transaction that performs the effect, so concurrent repeats
queue on the unique index: the first commits its effect and its response together, the others
then find the record and replay it. A request that fails stores nothing and may be retried.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response

from core.errors import DomainError
from core.models import IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Documents the header on every view that takes it (drf-spectacular).
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, description="Makes a retry safe: see README."
)


class InvalidIdempotencyKey(DomainError):
    default_code = "invalid_idempotency_key"
    default_detail = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."


class IdempotencyKeyReused(DomainError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used with a different request."


def request_fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _claim(user_id: int, key: str, fingerprint: str) -> int | None:
    """Insert the record; returns its id, or None when the key already exists (after waiting
    for a concurrent holder of the key to commit or roll back)."""
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, key, fingerprint, response_body, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, '', now()) ON CONFLICT (user_id, key) DO NOTHING RETURNING id",
            [user_id, key, fingerprint],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def idempotent(handler):
    """Decorate an authenticated view's POST handler to honour ``Idempotency-Key``."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
            raise InvalidIdempotencyKey()
        fingerprint = request_fingerprint(request)
        with transaction.atomic():
            record_id = _claim(request.user.pk, key, fingerprint)
            if record_id is None:
                record = IdempotencyRecord.objects.get(user_id=request.user.pk, key=key)
                if record.fingerprint != fingerprint:
                    raise IdempotencyKeyReused()
                replay = Response(json.loads(record.response_body), status=record.response_status)
                replay[REPLAYED_HEADER] = "true"
                return replay
            response = handler(view, request, *args, **kwargs)
            if not status.is_success(response.status_code):
                transaction.set_rollback(True)
                return response
            IdempotencyRecord.objects.filter(pk=record_id).update(
                response_status=response.status_code,
                response_body=json.dumps(response.data, cls=DjangoJSONEncoder),
            )
            return response

    # Lets the OpenAPI schema (core/schema.py) document 422 on exactly these handlers.
    wrapper.idempotent = True
    return wrapper


def idempotency_records_purge(*, older_than: timedelta) -> int:
    """Delete records older than ``older_than``; a key is honoured at least that long."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted

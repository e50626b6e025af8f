"""Cursor pagination for every list: stable under inserts, no COUNT(*), O(1) per page."""

from __future__ import annotations

import math
from base64 import b64decode, b64encode
from binascii import Error as Base64Error
from datetime import datetime
from urllib import parse

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor
from rest_framework.pagination import CursorPagination as DrfCursorPagination
from rest_framework.utils.urls import replace_query_param

from core.errors import DomainError


class InvalidCursor(DomainError):
    default_code = "invalid_cursor"
    default_detail = "Invalid cursor: follow the next and previous links as they were given."


class CursorPagination(DrfCursorPagination):
    """DRF's cursor pagination, with the cursor checked before it reaches SQL.

    A cursor is base64 of ``o=<offset>&r=<reverse>&p=<position>``, where the position is a
    value of the ordering column. DRF checks the offset and the flag but filters on any
    position as given, so a well-formed cursor carrying "not-a-date" for ``created_at`` failed
    in the database. Here the position is converted by the ordering field itself (model
    field, or the annotation's output field for ``rank``), and any bad cursor is one 400.

    Pinned windows: a listing whose rows depend on what was newest when it was first read (the
    search ranks its newest N matches) annotates its first page's rows with ``cursor_pin``, an
    upper bound of the primary keys it considered; the page's links carry it (``w=``) and
    :meth:`pin` gives it back to the filter for the following pages, which then rank the same
    window however many rows arrived since.
    """

    pin_annotation = "cursor_pin"

    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "-created_at"

    def paginate_queryset(self, queryset, request, view=None):
        self._queryset = queryset
        page = super().paginate_queryset(queryset, request, view)
        if getattr(self, "_pin", None) is None and page:
            self._pin = getattr(page[0], self.pin_annotation, None)
        return page

    def pin(self, request) -> int | None:
        """The pinned window's bound the request's cursor carries, None on a first page (or a
        cursor written before pins existed); a bound that is not a positive integer is one 400."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            tokens = parse.parse_qs(
                b64decode(encoded.encode("ascii")).decode("ascii"), keep_blank_values=True
            )
        except (Base64Error, UnicodeError, ValueError):
            raise InvalidCursor() from None
        raw = tokens.get("w", [None])[0]
        if raw is None:
            return None
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**63:
            raise InvalidCursor()
        self._pin = int(raw)
        return self._pin

    def encode_cursor(self, cursor: Cursor) -> str:
        """DRF's encoding (o, r, p), plus the pinned window's bound (w) when there is one."""
        pin = getattr(self, "_pin", None)
        if pin is None:
            return super().encode_cursor(cursor)
        tokens = {"w": str(pin)}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        encoded = b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)

    def decode_cursor(self, request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise InvalidCursor() from None
        if cursor is None or cursor.position is None:
            return cursor
        return cursor._replace(position=self._position_value(cursor.position))

    def _position_value(self, position: str):
        name = self.ordering[0].lstrip("-")
        annotation = self._queryset.query.annotations.get(name)
        try:
            field = (
                annotation.output_field
                if annotation is not None
                else self._queryset.model._meta.get_field(name)
            )
        except FieldDoesNotExist:  # an ordering this class was not written for
            raise InvalidCursor() from None
        try:
            value = field.to_python(position)
            field.run_validators(value)
        except (ValidationError, TypeError, ValueError):
            raise InvalidCursor() from None
        # float("nan") and float("inf") convert, but no row sits at such a position; the
        # cursors this class writes always carry a UTC offset.
        if (
            value is None
            or (isinstance(value, float) and not math.isfinite(value))
            or (isinstance(value, datetime) and value.tzinfo is None)
        ):
            raise InvalidCursor()
        return value

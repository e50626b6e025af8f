"""Cursor pagination for every list: stable under inserts, no COUNT(*), O(1) per page."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination as DrfCursorPagination


class CursorPagination(DrfCursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "-created_at"

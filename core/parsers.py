"""The API's JSON parser: DRF's, with a bound on nesting.

Python's JSON decoder recurses once per nested array or object: a 2 KB body of 1,000 nested
arrays raised RecursionError (a 500), and a body just under the limit would reach serializers
and fingerprints that recurse again. No request of this API nests deeper than a few levels, so
anything deeper than MAX_DEPTH is a 400 ``parse_error`` before any view code sees it.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 32


def _too_deep(data) -> bool:
    """Iterative, so checking depth cannot itself overflow the stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from None
        if _too_deep(data):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        return data

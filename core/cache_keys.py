"""Cache keys are built here and nowhere else, so their shape stays consistent.

A key is ``<prefix>:v<version>:<part>:<part>...``. Bumping CACHE_SCHEMA_VERSION (or a
prefix's own version) on a deploy that changes what is cached makes old entries unreachable
instead of serving them in their old shape.
"""

from __future__ import annotations

CACHE_SCHEMA_VERSION = 1


def make_key(prefix: str, *parts: object) -> str:
    """Return the cache key for ``prefix`` and ``parts``; parts must not contain ':'."""
    return ":".join([prefix, f"v{CACHE_SCHEMA_VERSION}", *(str(part) for part in parts)])

"""Bearer token format: a random secret for the client, its SHA-256 for the database."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def generate_token() -> str:
    """Return a new random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(raw_token: str) -> str:
    """Return the hex SHA-256 under which ``raw_token`` is stored and cached."""
    return hashlib.sha256(raw_token.encode()).hexdigest()

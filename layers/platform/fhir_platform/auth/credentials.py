"""API key material: generation and hashing. Keys are shown once and stored only as SHA-256 hashes.

A key is 32 random bytes (256 bits), so an unsalted fast hash is safe against guessing (the same
reasoning as GitHub/Stripe tokens); the prefix ``fhp_`` makes leaked keys greppable by scanners.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "fhp_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def same_secret(candidate: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (compares their hashes)."""
    return hmac.compare_digest(hash_key(candidate), hash_key(expected))

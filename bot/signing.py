"""Signed, expiring session values for cookies: HMAC-SHA256 under a key derived from a server secret.

A value is `<expires unix seconds>.<nonce>.<signature>`; it names no person and carries no secret, so a stolen
cookie is worth only its remaining lifetime, and changing the server secret ends every session at once. The key
is HMAC(secret, purpose): each purpose (the dashboard, a console) gets its own key and the secret itself never
leaves the server (RFC 5869's extract step with the purpose as salt).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

VERSION = "v1"


def derive_key(secret: str, purpose: str) -> bytes:
    """A per-purpose key: never the secret itself."""
    return hmac.new(f"storebot/{purpose}/{VERSION}".encode(), secret.encode(), hashlib.sha256).digest()


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(key: bytes, now: datetime, lifetime: timedelta) -> str:
    """A new session value that expires `lifetime` after `now`."""
    body = f"{int((now + lifetime).timestamp())}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(key, body)}"


def valid(key: bytes, value: str, now: datetime) -> bool:
    """True for a value this key signed that has not expired; anything else (forged, truncated, old) is False."""
    if len(value) > 200:
        return False
    body, _, signature = value.rpartition(".")
    expires, _, nonce = body.partition(".")
    if not (expires.isdigit() and len(expires) <= 12 and nonce):
        return False
    if not hmac.compare_digest(signature.encode(), _mac(key, body).encode()):
        return False
    return now.timestamp() < int(expires)

"""Per-source authentication: `X-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, or
`Authorization: Bearer <secret>` for providers that can only send a fixed token."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Signature"


def sign(secret: str, body: bytes) -> str:
    """The header value a source sends (also what tests and the docs use)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authentic(secret: str | None, body: bytes, signature: str | None, authorization: str | None) -> bool:
    """True only with a configured secret and a matching signature or bearer token."""
    if not secret:
        return False
    if signature:
        return hmac.compare_digest(signature.strip(), sign(secret, body))
    if authorization and authorization.startswith("Bearer "):
        return hmac.compare_digest(authorization.removeprefix("Bearer ").strip(), secret)
    return False

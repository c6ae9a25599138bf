"""Per-source authentication: `X-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, or
`Authorization: Bearer <secret>` only for the sources in `BEARER_SOURCES` (they cannot sign; a bearer
token is the secret itself, sent in every request, so a source that signs never accepts one).

Conventions: the scheme words (`sha256=`, `Bearer`) are case-insensitive, hex in either case. Any
header that is not of that shape (non-ASCII, wrong length, stray characters) is simply not
authentic — a 401, never an error."""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Signature"
BEARER_SOURCES = frozenset({"email", "operators"})  # the rest sign every body
_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})", re.IGNORECASE)
_BEARER = re.compile(r"bearer +([!-~]+)", re.IGNORECASE)  # token68-ish: printable ASCII, no spaces


def sign(secret: str, body: bytes) -> str:
    """The header value a source sends (also what tests and the docs use)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authentic(
    secret: str | None,
    body: bytes,
    signature: str | None,
    authorization: str | None,
    bearer_allowed: bool = True,
) -> bool:
    """True only with a configured secret and a matching signature (or, where allowed, bearer token)."""
    if not secret:
        return False
    if signature is not None:
        match = _SIGNATURE.fullmatch(signature.strip())
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return match is not None and hmac.compare_digest(match.group(1).lower().encode(), expected.encode())
    if authorization is not None and bearer_allowed:
        match = _BEARER.fullmatch(authorization.strip())
        return match is not None and hmac.compare_digest(match.group(1).encode(), secret.encode())
    return False

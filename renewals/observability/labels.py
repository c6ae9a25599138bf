"""Label values that stay bounded: a label is a small closed set, never a policy number, a journey id,
an address or a provider's free text — each distinct value is a new time series in Prometheus."""

from __future__ import annotations

import re
from collections.abc import Collection

OTHER = "other"
NONE = "none"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


def bounded(value: str | None, allowed: Collection[str]) -> str:
    """`value` if it is one of `allowed`, else "other" ("none" for no value)."""
    if not value:
        return NONE
    return value if value in allowed else OTHER


def error_class(value: str | None) -> str:
    """An error's type as a label: the identifier-like names our code raises (`InvalidPhone`,
    `OptedOut`), never a message; anything else (a provider's text, an empty type) is "other"."""
    if not value:
        return NONE
    return value if _NAME.fullmatch(value) else OTHER


def reason_class(reason: str | None) -> str:
    """The class of an outbox reason ("InvalidPhone: …", "no_address", "journey_finished (paid)"):
    its first word, as `error_class` bounds it."""
    if not reason:
        return NONE
    head = re.split(r"[:\s(]", reason.strip(), maxsplit=1)[0]
    return error_class(head)

"""Keep personal data (152-FZ) out of logs and error messages.

A log line or an exception message names the record (a policy number, a dedup key, a file's line
and field) and never quotes a client's phone, e-mail, name, VK id or a message text (a text carries
the client's name). Where a value must be shown to say what is wrong, it is masked:
`+7916***4567`, `i***@example.org`, `12***` (a VK id), `Ив***` (anything else).

`redact` and `scrub_exception` are for text that comes from outside and may quote what we sent (a
provider's error message): the known values are masked wherever they appear, in any spelling of
the phone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_MASK = "***"
_NOT_DIGITS = re.compile(r"\D")


def mask_phone(phone: str | None) -> str:
    """+79161234567 → +7916***4567; a short or garbled input keeps its first two characters only."""
    if not phone:
        return "-"
    if len(phone) > 9:
        return phone[:5] + _MASK + phone[-4:]
    return phone[:2] + _MASK if len(phone) > 3 else _MASK


def mask_email(address: str | None) -> str:
    """ivan@example.org → i***@example.org (the domain says which provider refused it)."""
    if not address:
        return "-"
    if "@" not in address:
        return mask_text(address)
    name, _, domain = address.partition("@")
    return f"{name[:1]}{_MASK}@{domain}"


def mask_vk(vk_id: str | None) -> str:
    """1234567 → 12***."""
    return mask_text(vk_id)


def mask_text(value: str | None) -> str:
    """Anything else personal (a message text, an unknown kind of address): its first two characters."""
    if not value:
        return "-"
    return value[:2] + _MASK


def mask_address(channel: str, address: str | None) -> str:
    """A recipient as a log line or an audit row may show it: by the channel's kind of address."""
    if not address:
        return "-"
    if channel in ("sms", "robot_call"):
        return mask_phone(address)
    if "@" in address:
        return mask_email(address)
    return mask_vk(address)


def redact(text: str, *values: str | None) -> str:
    """`text` with every known personal value in it masked: a phone in any spelling (+7…, 7…, 8…,
    with spaces or dashes), an e-mail, a VK id, a name, a message text (line by line: a quote of it
    may be escaped, `'…\\n…'`)."""
    lines = {line.strip() for v in values if v for line in v.splitlines()}
    # Every log line of a send is redacted against its recipient and each line of its text, and
    # mostly quotes none of them: a substring test on the folded text (and on its digits) skips the
    # values that cannot match before a pattern is compiled for them. Both tests can only say yes
    # more often than the pattern does (`_fold` folds at least what IGNORECASE equates; a phone's
    # separators are gone from the digits), never less.
    folded, digits = _fold(text), _NOT_DIGITS.sub("", text)
    for value in sorted({line for line in lines if line}, key=len, reverse=True):
        national = _phone_digits(value)
        if national is not None:
            if national in digits:
                text = _substitute(_phone_pattern(national), mask_phone(value), text)
        # shorter values would mask ordinary words and numbers
        elif (len(value) >= 3 or "@" in value) and _fold(value) in folded:
            masked = mask_email(value) if "@" in value else mask_text(value)
            text = _substitute(_literal(value), masked, text)
    return text


def scrub_exception(error: BaseException, *values: str | None) -> None:
    """`redact` the message of `error` and of every exception chained to it, in place, so its
    traceback (as a log prints it) and the failure Temporal stores quote none of `values`."""
    for exc in _chain(error):
        exc.args = tuple(redact(arg, *values) if isinstance(arg, str) else arg for arg in exc.args)
        message = vars(exc).get("message")  # our errors keep it as an attribute, too
        if isinstance(message, str):
            exc.message = redact(message, *values)  # type: ignore[attr-defined]


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _phone_digits(value: str) -> str | None:
    """A phone's ten national digits; None for a value that is not a phone (letters, an e-mail,
    too few digits)."""
    if not re.fullmatch(r"[\d\s()+\-]+", value):
        return None
    digits = _NOT_DIGITS.sub("", value)
    return digits[-10:] if len(digits) >= 10 else None


def _phone_pattern(national: str) -> re.Pattern[str]:
    """The ten national digits with any separators between them and any trunk prefix (+7, 7, 8) before."""
    return re.compile(r"(?:\+?[78][\s()\-]*)?" + r"[\s()\-]*".join(national))


# IGNORECASE equates the dotted capital I and the dotless i with i; casefold() does not.
_IGNORECASE_EXTRAS = str.maketrans({"\u0130": "i", "\u0131": "i"})


def _fold(text: str) -> str:
    """Per character, at least what `re.IGNORECASE` equates folds to one string (tests/test_pii_logs.py
    checks every code point)."""
    return text.translate(_IGNORECASE_EXTRAS).casefold()


def _literal(value: str) -> re.Pattern[str]:
    return re.compile(re.escape(value), re.IGNORECASE)


def _substitute(pattern: re.Pattern[str], masked: str, text: str) -> str:
    return pattern.sub(lambda _: masked, text)  # a function: `masked` is never read as a template

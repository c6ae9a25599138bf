"""Phone numbers: one parser for every place a number comes in (intake, company phones in client texts,
provider adapters, the fake providers), so they all agree on what a valid number is.

Numbers without a country code are read as Russian (`8 916 123-45-67`); the result is E.164.
"""

from __future__ import annotations

import phonenumbers

from renewals.privacy import mask_phone


class InvalidPhone(ValueError):
    """A number that cannot be dialled; the message says why, quoting the input masked
    (`'+7916***4567' is not a valid phone number`): it may be a client's number, and it ends up in
    rejects files, terminals and logs."""


def to_e164(raw: str, *, russian: bool = False) -> str:
    """`raw` in E.164 (`+79161234567`), or `InvalidPhone`. `russian`: also refuse a valid foreign
    number (and a Kazakh one, which shares +7)."""
    try:
        parsed = phonenumbers.parse(raw, "RU")
    except phonenumbers.NumberParseException as error:
        raise InvalidPhone(f"{mask_phone(raw)!r} is not a phone number ({error})") from error
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"{mask_phone(raw)!r} is not a valid phone number")
    if russian and phonenumbers.region_code_for_number(parsed) != "RU":
        raise InvalidPhone(f"{mask_phone(raw)!r} is not a Russian number (+7 and a Russian operator code)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_valid_phone(raw: str) -> bool:
    try:
        to_e164(raw)
    except InvalidPhone:
        return False
    return True


def for_reading(raw: str) -> str:
    """A phone as a client reads it in a text: +7 903 111-22-33; short numbers (*0999) and anything
    unparsable as given."""
    try:
        parsed = phonenumbers.parse(raw, "RU")
    except phonenumbers.NumberParseException:
        return raw
    if not phonenumbers.is_valid_number(parsed):
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

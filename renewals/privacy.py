"""Keep personal data (152-FZ) out of logs: masked phones and names."""

from __future__ import annotations


def mask_phone(phone: str | None) -> str:
    """+79161234567 → +7916***4567."""
    if not phone:
        return "-"
    return phone[:5] + "***" + phone[-4:] if len(phone) > 9 else "***"


def mask_address(channel: str, address: str | None) -> str:
    if not address:
        return "-"
    if channel in ("sms", "robot_call"):
        return mask_phone(address)
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    return address[:2] + "***"

"""Test data: a policy or scenario in one call, with the seed's example values as defaults."""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence
from typing import Any

from renewals.models import Policy

CLIENT: dict[str, Any] = {
    "last_name": "Иванов",
    "first_name": "Иван",
    "patronymic": "Петрович",
    "phone": "+79161234567",
    "email": "ivan@example.org",
    "vk_id": "1234567",
    "timezone": "Europe/Moscow",
}
AGENT: dict[str, Any] = {
    "id": "A1",
    "name": "Петрова Анна",
    "phone": "+79031112233",
    "renewal_rates": {"KASKO": 0.6, "OSAGO": 0.7, "IFL": 0.5},
}
CENTRE: dict[str, Any] = {"id": "msk", "name": "Москва", "phone": "+74957770000"}


def policy_dict(product: str = "KASKO", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": "ХХХ 0123456789",
        "product": product,
        "product_code": None,
        "bank": None,
        "expires_on": "2027-04-20",
        "first_prolongation_year": False,
        "renewal_centre": False,
        "client": copy.deepcopy(CLIENT),
        "agent": copy.deepcopy(AGENT),
        "regional_centre": copy.deepcopy(CENTRE),
    }
    for key, value in overrides.items():
        if key in ("client", "agent") and isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


def policy(product: str = "KASKO", **overrides: Any) -> Policy:
    return Policy.model_validate(policy_dict(product, **overrides))


def scenario_phone(sid: str) -> str:
    return f"+7916{zlib.crc32(sid.encode()) % 10_000_000:07d}"


def scenario(
    sid: str,
    product: str = "KASKO",
    now: str = "2027-03-01T10:00:00+03:00",
    events: list[dict[str, Any]] | None = None,
    robot: list[str] | None = None,
    **policy_overrides: Any,
) -> dict[str, Any]:
    policy_overrides.setdefault("number", f"TEST-{sid}")
    # Every scenario's client has addresses of their own: an opt-out in one must not reach the others.
    client = {
        "phone": scenario_phone(sid),
        "email": f"{sid}@example.org",
        "vk_id": str(zlib.crc32(sid.encode())),
    }
    client.update(policy_overrides.get("client", {}))
    policy_overrides["client"] = client
    return {
        "id": sid,
        "now": now,
        "policy": policy_dict(product, **policy_overrides),
        "events": events or [],
        "robot": robot or [],
    }


class ChangeCollector:
    """An import's `on_changed` sink that keeps what it is handed (the CLI's passes it to journeys)."""

    def __init__(self) -> None:
        self.changes: list[tuple[Policy, bool]] = []

    async def __call__(self, changes: Sequence[tuple[Policy, bool]]) -> None:
        self.changes.extend(changes)

    @property
    def numbers(self) -> list[str]:
        return [policy.number for policy, _ in self.changes]

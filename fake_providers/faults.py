"""Deterministic fault decisions: one draw from a seeded `random.Random` per request."""

from __future__ import annotations

import asyncio
import contextlib
import random
from enum import StrEnum

from fake_providers.config import FaultConfig


class Fault(StrEnum):
    NONE = "none"
    HANG = "hang"
    ERROR = "error"
    RATE_LIMIT = "rate_limit"
    STALL = "stall"  # hang before accepting, then drop: the client times out, nothing was sent


def digits(phone: str) -> str:
    """A number as the providers log and key it, and faults match it: its digits only."""
    return "".join(ch for ch in phone if ch.isdigit())


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self.configure(config)
        self._release = asyncio.Event()

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._invalid = {digits(p) for p in config.invalid_phones}
        self._blocked = {r.strip().lower() for r in config.blocked_recipients}

    def decide(self, channel: str) -> Fault:
        """The fault for this request; always draws, so the sequence does not depend on the channel."""
        draw = self._rng.random()
        if channel not in self.config.channels:
            return Fault.NONE
        c = self.config
        if draw < c.timeout_rate:
            return Fault.HANG
        if draw < c.timeout_rate + c.error_rate:
            return Fault.ERROR
        if draw < c.timeout_rate + c.error_rate + c.rate_limit_rate:
            return Fault.RATE_LIMIT
        if draw < c.timeout_rate + c.error_rate + c.rate_limit_rate + c.stall_rate:
            return Fault.STALL  # last, so adding it kept the faults older seeds inject
        return Fault.NONE

    def phone_invalid(self, phone: str) -> bool:
        return digits(phone) in self._invalid

    def blocked(self, recipient: str) -> bool:
        return recipient.strip().lower() in self._blocked

    async def latency(self) -> None:
        if self.config.latency_seconds:
            await asyncio.sleep(self.config.latency_seconds)

    async def hang(self) -> None:
        """Hold the answer back (longer than any sane client timeout) until released or timed out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.config.hang_seconds)

    def release_hangs(self) -> None:
        """Let every held answer go (shutdown, tests); later hangs hold again."""
        self._release.set()
        self._release = asyncio.Event()

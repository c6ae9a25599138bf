"""The gateway's SMTP sink (aiosmtpd), on the caller's event loop: logs every message it accepts,
refuses blocked recipients with 550, and injects the same faults as the HTTP APIs (4xx for errors and
rate limits, a held 250 for timeouts after accept, a held then dropped DATA for timeouts before).

Like any SMTP server it accepts a resend: the same Message-ID again is logged as a repeat — a second
message, which the recipient's mail store may collapse by Message-ID (README, "E-mail (SMTP)")."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from fake_providers.faults import Fault
from fake_providers.gateway import Exchange, Gateway


class _Handler:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.gateway.faults.blocked(address):
            self.gateway.requests.add("email", "rcpt", None, address, "rejected:550")
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        gw, faults = self.gateway, self.gateway.faults
        await faults.latency()
        raw = envelope.original_content or envelope.content or b""
        message: Any = message_from_bytes(
            raw if isinstance(raw, bytes) else raw.encode(), policy=policy.default
        )
        assert isinstance(message, EmailMessage)
        message_id = str(message.get("Message-ID", "")).strip()
        exchange = Exchange(gw, "email", "data", message_id, ",".join(envelope.rcpt_tos))
        fault = faults.decide("email")
        if fault is Fault.ERROR:
            return exchange.answer("error", "451 4.3.0 Temporary server error")
        if fault is Fault.RATE_LIMIT:
            return exchange.answer("rate_limit", "451 4.7.1 Rate limit exceeded, try later")
        if fault is Fault.STALL:
            await exchange.stall()
            return "451 4.4.2 Timeout, message not accepted"
        body = message.get_body(preferencelist=("plain",))
        record, first = gw.log.accept(
            "email",
            message_id or f"no-message-id-{len(gw.log.records()) + 1}",
            exchange.recipient,
            body.get_content() if body is not None else "",
            provider_id=lambda seq: message_id or f"email-{seq}",
            dedup=False,
            subject=str(message.get("Subject", "")),
            meta={"html": _html_part(message)},
        )
        await gw.accepted("data", record, first, fault)
        return f"250 OK queued as {record.seq}"


def _html_part(message: EmailMessage) -> str | None:
    part = message.get_body(preferencelist=("html",))
    return str(part.get_content()) if part is not None else None


class SmtpSink:
    """`await sink.start()` then `sink.port`; `await sink.stop()`."""

    def __init__(
        self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0, idle_timeout: float = 300.0
    ) -> None:
        self.gateway = gateway
        self.idle_timeout = idle_timeout  # a session silent this long is closed, as relays do
        self.host = host
        self.port = port
        self.sessions = 0  # SMTP connections accepted (tests: the adapter reuses its sessions)
        self._server: asyncio.Server | None = None

    def _session(self, handler: _Handler, loop: asyncio.AbstractEventLoop) -> SMTP:
        self.sessions += 1
        return SMTP(handler, hostname="gateway.local", loop=loop, timeout=self.idle_timeout)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self.gateway)
        self._server = await loop.create_server(lambda: self._session(handler, loop), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

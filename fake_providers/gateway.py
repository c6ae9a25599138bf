"""The gateway's state, shared by every fake provider's router: the message and request logs, the
fault injector, the portal's data, the robot's script and the callbacks still being posted.

A router reaches it as `gw: GatewayDep` (the `Gateway` of the app serving the request), and notes each
request's outcome through an `Exchange`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from fake_providers.config import FaultConfig, GatewayConfig
from fake_providers.faults import Fault, FaultInjector
from fake_providers.request_log import MessageLog, MessageRecord, RequestLog
from renewals.journey_api import RobotOutcome
from renewals.webhooks.auth import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

Answer = TypeVar("Answer")


class PortalRenewal(BaseModel):  # the portal's renewal of one policy, as its API answers it
    draft: bool = False
    quote: bool = False
    paid: bool = False


class PortalAgent(BaseModel):
    id: str
    name: str
    phone: str | None = None


class Gateway:
    """The gateway's state: message and request logs, faults, portal data, pending callbacks."""

    def __init__(self, config: GatewayConfig | None = None, callback_client: httpx.AsyncClient | None = None):
        self.config = config or GatewayConfig()
        self.log = MessageLog(self.config.log_path)
        self.requests = RequestLog()
        self.faults = FaultInjector(self.config.faults)
        self.renewals: dict[tuple[str, date], PortalRenewal] = {}
        self.agents: dict[str, PortalAgent] = {}
        self.robot_script: dict[str, list[RobotOutcome]] = {}  # phone digits → next outcomes
        self.run_token = secrets.token_hex(4)  # keeps callback event ids unique across gateway runs
        self._callback_client = callback_client
        self._callbacks: set[asyncio.Task[None]] = set()

    def configure_faults(self, faults: FaultConfig) -> None:
        self.config.faults = faults
        self.faults.configure(faults)

    async def drain_callbacks(self) -> None:
        """Wait for every callback posted so far (tests; shutdown)."""
        while self._callbacks:
            await asyncio.gather(*list(self._callbacks), return_exceptions=True)

    async def aclose(self) -> None:
        self.faults.release_hangs()
        await self.drain_callbacks()
        if self._callback_client is not None:
            await self._callback_client.aclose()

    def post_callback(self, url: str, payload: dict[str, Any], secret: str | None = None) -> None:
        """POST the JSON in the background, signed like every source of our webhook service."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        task = asyncio.get_running_loop().create_task(self._post(url, body, headers))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    def post_raw(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST a body as it is — a provider's own format (SMSC's form, a VK event) — in the background,
        delivered and retried as `post_callback`'s."""
        task = asyncio.get_running_loop().create_task(self._post(url, body, headers))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Deliver one callback; 404 (the journey's row not there yet), 5xx and transport errors are
        retried with backoff, other 4xx (a bad signature) are not."""
        if self._callback_client is None:
            self._callback_client = httpx.AsyncClient(timeout=10.0)
        delay = self.config.callback_delay_seconds
        for attempt in range(self.config.callback_attempts):
            if delay:
                await asyncio.sleep(delay)
            delay = 0.5 * 2**attempt
            try:
                response = await self._callback_client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("callback failed: %s", type(exc).__name__)
                continue
            if response.status_code < 400:
                return
            log.warning("callback answered HTTP %s", response.status_code)
            if response.status_code != 404 and response.status_code < 500:
                return
        log.warning("callback given up after %d attempts", self.config.callback_attempts)

    async def accepted(self, endpoint: str, record: MessageRecord, first: bool, fault: Fault) -> None:
        """Note an accepted request; under the HANG fault hold the answer (accepted, answer lost)."""
        outcome = "hang" if fault is Fault.HANG else "accepted" if first else "repeat"
        self.requests.add(record.channel, endpoint, record.key, record.recipient, outcome)
        if fault is Fault.HANG:
            await self.faults.hang()

    async def stall(self, channel: str, endpoint: str, key: str | None, recipient: str) -> Response:
        """The timeout-before-accept fault: hold the request, then drop it unrecorded (504)."""
        self.requests.add(channel, endpoint, key, recipient, "stall")
        await self.faults.hang()
        return Response("Gateway Timeout", status_code=504)


def current_gateway(request: Request) -> Gateway:
    """The `Gateway` of the app serving this request (`create_app` puts it in `app.state`)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(current_gateway)]


@dataclass(frozen=True)
class Exchange:
    """One request to a send-like endpoint: every way it is answered notes its outcome in the request
    log, under this channel, endpoint, dedup key and recipient."""

    gateway: Gateway
    channel: str
    endpoint: str
    key: str | None
    recipient: str

    def answer(self, outcome: str, answer: Answer) -> Answer:
        self.gateway.requests.add(self.channel, self.endpoint, self.key, self.recipient, outcome)
        return answer

    async def stall(self) -> Response:
        return await self.gateway.stall(self.channel, self.endpoint, self.key, self.recipient)

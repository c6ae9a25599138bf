"""Helpers shared by the adapter and gateway tests (no tests here): requests, an in-process gateway
client, and a real uvicorn server on an ephemeral 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from fake_providers import Gateway, create_app
from renewals.activity_io import SendRequest
from renewals.models import Channel

PHONE = "+79161234567"
OTHER_PHONE = "+79031112233"


def send_request(
    channel: Channel = Channel.SMS,
    recipient: str = PHONE,
    touchpoint: str = "d-30-sms",
    journey_id: str = "renewal-AB123-20270420",
    text: str = "Полис истекает 20.04.2027. Продлите у своего агента.",
    subject: str | None = None,
    resumed: bool = False,
) -> SendRequest:
    """`resumed=True` is a retry's request (the outbox row existed): providers reconcile first."""
    return SendRequest(
        journey_id=journey_id,
        touchpoint=touchpoint,
        channel=channel,
        template="t",
        recipient=recipient,
        text=text,
        subject=subject,
        resumed=resumed,
    )


def asgi_client(gateway: Gateway) -> httpx.AsyncClient:
    """An httpx client that calls the gateway app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(gateway)), base_url="http://gw")


def mock_client(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 (ephemeral port); yields its base URL.

    The socket is bound and listening before the server task starts, so clients can connect at
    once (the kernel queues them) — no waiting for 'started'.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()

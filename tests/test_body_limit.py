"""Every route of the webhook service refuses an over-long body before any route or dependency reads
it: FastAPI parses a route's pydantic body before its auth dependency, so without the middleware an
unauthenticated caller could make the operator routes read (and parse) any amount."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from renewals.db.database import Database
from renewals.webhooks.app import MAX_BODY, create_app
from renewals.webhooks.limits import BodyLimit


class _NoTemporal:
    """The service's Temporal client, which no request of these tests may reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a refused request reached Temporal ({name})")


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/limit.db")
    await db.migrate()
    app = create_app(db, cast(Any, _NoTemporal()), {"operators": "s3cret", "sms": "s3cret"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://webhooks"
    ) as client:
        yield client
    await db.dispose()


@pytest.mark.parametrize("path", ["/operators/tasks/1/outcome", "/operators/tasks/1/claim", "/webhooks/sms"])
async def test_a_declared_length_over_the_limit_is_413_before_auth(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.post(path, content=b"{" + b" " * MAX_BODY + b"}")
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": f"body over {MAX_BODY} bytes"}


async def test_a_streamed_body_is_cut_off_at_the_limit(http: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: chunked
        nonlocal sent
        for _ in range(64):
            sent += 16 * 1024
            yield b" " * 16 * 1024

    response = await http.post("/operators/tasks/1/outcome", content=chunks())
    assert response.status_code == 413
    assert sent < 64 * 16 * 1024  # stopped reading long before the end


async def test_a_small_unauthenticated_request_is_still_refused_by_auth(http: httpx.AsyncClient) -> None:
    response = await http.post("/operators/tasks/1/outcome", json={"outcome": "reached"})
    assert response.status_code == 401


async def test_the_middleware_never_hands_more_than_the_limit_to_the_app() -> None:
    consumed: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            consumed.append(total)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})

    messages = [{"type": "http.request", "body": b"x" * 40, "more_body": True} for _ in range(5)]
    replies: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        replies.append(message)

    await BodyLimit(app, limit=100)({"type": "http", "headers": []}, receive, send)
    assert max(consumed) <= 100 and replies[0]["status"] == 413


async def test_the_batched_e_mail_webhook_has_its_own_larger_limit(http: httpx.AsyncClient) -> None:
    """Unisender Go batches events: its route reads up to 1 MiB itself; past that it is 413 too."""
    from renewals.webhooks import email_api

    batch = b'{"events_by_user": [' + b" " * (MAX_BODY * 2) + b"]}"
    response = await http.post(email_api.ROUTE, content=batch)
    assert response.status_code == 401  # read (bounded by the route itself), then refused unsigned
    too_big = await http.post(email_api.ROUTE, content=b" " * (email_api.MAX_BODY + 1))
    assert too_big.status_code == 413

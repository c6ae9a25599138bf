"""A body-size limit for every route of the service, before any route or dependency runs.

The callback routes read their body themselves (bounded, signature first), but FastAPI reads and
parses a route's pydantic body *before* its dependencies, so the operator routes (and any router a
later source adds) would read a stranger's whole body before the auth dependency refuses it. This
ASGI middleware answers 413 for a declared length over the limit, and cuts a chunked stream off as
soon as it passes it, whatever the route.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_LIMIT = 64 * 1024


class BodyTooLarge(Exception):
    """Raised inside the app's `receive` once a streamed body passes the limit."""


class BodyLimit:
    """`limit` bytes for every route; `paths` gives a route (by exact path) a limit of its own, e.g. a
    provider's batched webhook that bounds its own read."""

    def __init__(
        self, app: ASGIApp, limit: int = DEFAULT_LIMIT, paths: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.default, self.paths = app, limit, dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.default)
        declared = _content_length(scope)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, limit)
            return
        seen = 0
        over = started = False

        async def limited_receive() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The app may turn the error into an answer of its own (FastAPI: 400 "error parsing the
            # body"): once the body is over the limit, the caller gets the 413 instead.
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"body over {limit} bytes"}).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> str | None:
    headers: Any = scope.get("headers") or []
    for name, value in headers:
        if name == b"content-length":
            return str(value.decode("latin-1")).strip()
    return None


async def read_body(request: Request, limit: int = DEFAULT_LIMIT) -> bytes:
    """The raw body, at most `limit` bytes, for a route that reads its own (signature first, then the
    parser): a larger declared length is refused before reading, a longer stream as soon as it passes
    the limit (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(status_code=413, detail=f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status_code=413, detail=f"body over {limit} bytes")
    return bytes(body)

"""The adapters' HTTP client (renewals/channels/http_client.py) against a real local HTTP/1.1 server:
connections are reused, and one the server closed while idle is noticed before it is used again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest
from httpcore._utils import is_socket_readable

from renewals.channels import http_client as http_client_module
from renewals.channels.http_client import SocketKeepingBackend, TidyConnectionPool, http_client

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def server(hang_up: asyncio.Event | None = None) -> AsyncIterator[tuple[str, list[int]]]:
    """A keep-alive server answering every request with `ok`; with `hang_up`, it closes each
    connection once it has answered and the event is set, without saying so (no `Connection:
    close`), as a provider's load balancer does to an idle connection. Yields its URL and the
    requests seen per connection."""
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mine = len(served)
        served.append(0)
        try:
            while (head := await reader.readuntil(b"\r\n\r\n")) and head:
                served[mine] += 1
                writer.write(RESPONSE)
                await writer.drain()
                if hang_up is not None:
                    await hang_up.wait()
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/", served
    finally:
        listener.close()
        await listener.wait_closed()


def test_the_client_s_pool_keeps_sockets() -> None:
    client = http_client(httpx.Timeout(5))
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, TidyConnectionPool) and isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, SocketKeepingBackend)


async def test_requests_share_one_connection() -> None:
    async with server() as (url, served), http_client(httpx.Timeout(5)) as client:
        for _ in range(3):
            assert (await client.get(url)).text == "ok"
    assert served == [3]


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    hang_up = asyncio.Event()
    async with server(hang_up) as (url, served), http_client(httpx.Timeout(5)) as client:
        assert (await client.get(url)).text == "ok"
        (idle,) = client._transport._pool.connections  # type: ignore[attr-defined]
        assert idle.is_idle() and not idle.has_expired()
        hang_up.set()
        async with asyncio.timeout(5):  # until the server's FIN has reached our socket
            while not idle.has_expired():
                await asyncio.sleep(0.01)
        assert (await client.get(url)).text == "ok"
    assert served == [1, 1]


async def test_idle_connections_beyond_the_keepalive_limit_are_closed_and_the_rest_reused() -> None:
    async with server() as (url, served), http_client(httpx.Timeout(5)) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        pool._max_keepalive_connections = 2
        await asyncio.gather(*(client.get(url) for _ in range(5)))  # five connections at once
        assert len(pool.connections) == 2 and all(c.is_idle() for c in pool.connections)
        await asyncio.gather(*(client.get(url) for _ in range(2)))
    assert sorted(served) == [1, 1, 1, 2, 2]  # the two kept served the next two requests


async def test_a_request_polls_the_connection_it_takes_not_every_idle_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 20 idle connections, a request asks one of them whether the server closed it (plus, at
    most once a second, a sweep of all), where httpcore asked all 20 at each of a request's two tidies."""
    polls: list[object] = []

    def counted(sock: object) -> bool:
        polls.append(sock)
        return is_socket_readable(sock)  # type: ignore[arg-type]

    monkeypatch.setattr(http_client_module, "is_socket_readable", counted)
    async with server() as (url, served), http_client(httpx.Timeout(5)) as client:
        await asyncio.gather(*(client.get(url) for _ in range(20)))  # twenty connections, all idle after
        assert len(client._transport._pool.connections) == 20  # type: ignore[attr-defined]
        polls.clear()
        for _ in range(10):
            assert (await client.get(url)).text == "ok"
    assert len(polls) <= 10 + 2 * 20, len(polls)  # one a request, and room for two sweeps
    assert len(served) == 20

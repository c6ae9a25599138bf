"""`python -m bench.http_client_cost [ROUNDS]`: CPU per HTTP request of the adapters' client
(renewals/channels/http_client.py) against plain httpx and against httpx with only the sockets kept,
with 1, 5 and 20 requests in flight to a local keep-alive server in the same process (so a figure
includes the server's small share). What the fifth round of docs/performance.md quotes."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

import httpcore
import httpx

from renewals.channels.http_client import SocketKeepingBackend, http_client

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
TIMEOUT = httpx.Timeout(5)


def plain() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT)


def sockets_kept() -> httpx.AsyncClient:
    client = plain()
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    pool._network_backend = SocketKeepingBackend(pool._network_backend)
    return client


CLIENTS: dict[str, Callable[[], httpx.AsyncClient]] = {
    "httpx": plain,
    "sockets kept": sockets_kept,
    "http_client": lambda: http_client(TIMEOUT),
}


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass  # the client hung up, or the run is over (its loop cancels the handlers)
    finally:
        writer.close()


async def cpu_per_request_us(client: httpx.AsyncClient, url: str, in_flight: int, n: int = 3000) -> float:
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            (await client.get(url)).raise_for_status()

    await asyncio.gather(*(one() for _ in range(200)))  # the pool warm: `in_flight` connections
    t0 = time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.process_time() - t0) / n * 1e6


async def main(rounds: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        for in_flight in (1, 5, 20):
            for name, make in CLIENTS.items():
                figures = []
                for _ in range(rounds):
                    async with make() as client:
                        figures.append(round(await cpu_per_request_us(client, url, in_flight)))
                print(f"{in_flight:>2} in flight, {name:<13} µs CPU per request: {figures}", flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))

"""The HTTP client the providers' adapters send through: httpx, with three costs of httpcore's
connection pool (1.0.9) taken out. All scale with the pool, and a channel worker keeps 20
connections to its provider busy (20 sends at once), so they were paid 20 times a request:

- Whenever a request is queued or a response closed, the pool tidies itself: for each idle
  connection it counted the pool's idle connections anew — `len([c.is_idle() for c in
  connections])`, which counts every connection, idle or not (the length of a list of booleans).
  With 20 connections that is 400 calls a tidy, two tidies a request: `TidyConnectionPool` counts
  once per tidy, and counts the idle ones (which is what `max_keepalive_connections` means).
- The same tidy asked every idle connection whether the server has closed it (a `poll` each, ≈ 40
  a request). Now the connection a request is about to take is asked (a closed one is closed and the
  next one asked), and all of them at most once a `SWEEP_SECONDS`, so a connection the server closed
  is never used and does not linger.
- Each of those answers went through anyio's `extra(raw_socket)`, which builds the stream's whole
  attribute table — a `getpeername()` system call included — to hand back one socket (3.6 % of the
  worker's main thread in the burst's profile). `SocketKeepingStream` looks its socket up once, when
  the connection is made.

`python -m bench.http_client_cost` measures CPU per request against plain httpx (docs/performance.md,
fifth round). Everything else is httpx and httpcore, unchanged; tests/test_http_client.py pins the
behaviour (reuse, a server-closed connection not reused, surplus idle connections closed, one poll a
request).
"""

from __future__ import annotations

import socket
import time
import typing

import httpcore
import httpx
from httpcore._async.interfaces import AsyncConnectionInterface
from httpcore._utils import is_socket_readable

SWEEP_SECONDS = 1.0  # how often every idle connection is asked whether the server has closed it


class SocketKeepingStream(httpcore.AsyncNetworkStream):
    """A connection's stream, its socket looked up once."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return SocketKeepingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        if info == "socket":
            return self._socket
        return self._stream.get_extra_info(info)


class SocketKeepingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's backend (the one the pool had) with its streams wrapped in `SocketKeepingStream`."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return SocketKeepingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return SocketKeepingStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class TidyConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its tidy-up done in one pass over the connections, and the readability
    `poll` of idle connections (has the server closed it?) done for the one a request is about to
    take, with a sweep of all of them at most once a `SWEEP_SECONDS` (see the module's docstring).
    The assignment of queued requests is httpcore's otherwise."""

    _swept_until: float = 0.0

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now >= self._swept_until
        if sweep:
            self._swept_until = now + SWEEP_SECONDS
        idle = sum(1 for connection in self._connections if connection.is_idle())
        for connection in list(self._connections):
            if connection.is_closed():
                self._connections.remove(connection)
            elif ((sweep or not connection.is_idle()) and connection.has_expired()) or (
                connection.is_idle() and idle > self._max_keepalive_connections
            ):
                idle -= connection.is_idle()
                self._connections.remove(connection)
                closing.append(connection)

        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            available = self._available(origin, closing)
            if available is not None:
                pool_request.assign_to_connection(available)
                continue
            if len(self._connections) >= self._max_connections:
                idle_one = next((c for c in self._connections if c.is_idle()), None)
                if idle_one is None:
                    continue  # the request waits for a connection to come free
                self._connections.remove(idle_one)
                closing.append(idle_one)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing

    def _available(
        self, origin: httpcore.Origin, closing: list[AsyncConnectionInterface]
    ) -> AsyncConnectionInterface | None:
        """The first connection that can take a request to `origin` now; an idle one the server has
        closed (or whose keep-alive ran out) is closed instead and the next one looked at."""
        for connection in list(self._connections):
            if connection.can_handle_request(origin) and connection.is_available():
                if connection.is_idle() and connection.has_expired():
                    self._connections.remove(connection)
                    closing.append(connection)
                    continue
                return connection
        return None


def http_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` (environment proxies honoured as ever: the client is httpx's own)
    whose direct connections go through `TidyConnectionPool` and keep their sockets."""
    client = httpx.AsyncClient(timeout=timeout)
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool:  # not a proxy's pool: those are httpx's as ever
        pool.__class__ = TidyConnectionPool  # same state, the assignment above replaced
        pool._network_backend = SocketKeepingBackend(pool._network_backend)
    return client

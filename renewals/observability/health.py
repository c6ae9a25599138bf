"""Liveness and readiness, the same for the worker and the webhook service.

* `/health/live`: the process's event loop answers (and, for the worker, its workers still run).
  A failing liveness probe means "restart me".
* `/health/ready`: the Temporal server and the application database answer, each within
  `CHECK_TIMEOUT`. A failing readiness probe means "don't count on me yet" (the stack waits for it
  before it says it is running; a load balancer stops sending callbacks). 503 with what failed.

The worker has no HTTP server of its own, so it serves these on `RENEWALS_WORKER_HEALTH_ADDRESS`
(`health_server`); the webhook service has them as routes (`webhooks.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.client import Client

from renewals.db.database import Database

CHECK_TIMEOUT = 3.0


async def check_temporal(client: Client, timeout: float = CHECK_TIMEOUT) -> str | None:
    """None if the Temporal frontend answers its health check, else what went wrong."""
    try:
        async with asyncio.timeout(timeout):
            healthy = await client.service_client.check_health(timeout=None)
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except Exception as error:
        return f"{type(error).__name__}: {error}"[:200]
    return None if healthy else "not serving"


async def check_database(db: Database, timeout: float = CHECK_TIMEOUT) -> str | None:
    """None if the application database answers `SELECT 1`, else what went wrong (no URL, no
    password: the error's class and first words)."""
    try:
        async with asyncio.timeout(timeout), db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except Exception as error:
        return type(error).__name__
    return None


async def readiness(client: Client, db: Database) -> tuple[bool, dict[str, str]]:
    temporal, database = await asyncio.gather(check_temporal(client), check_database(db))
    checks = {"temporal": temporal or "ok", "database": database or "ok"}
    return temporal is None and database is None, checks


def add_health_routes(
    app: FastAPI, client: Client, db: Database, alive: Callable[[], bool] = lambda: True
) -> None:
    @app.get("/health/live", tags=["service"], summary="liveness: the process answers")
    async def live() -> JSONResponse:
        ok = alive()
        return JSONResponse({"status": "ok" if ok else "stopped"}, status_code=200 if ok else 503)

    @app.get("/health/ready", tags=["service"], summary="readiness: Temporal and the database answer")
    async def ready() -> JSONResponse:
        ok, checks = await readiness(client, db)
        body: dict[str, Any] = {"status": "ready" if ok else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)


def health_app(client: Client, db: Database, alive: Callable[[], bool]) -> FastAPI:
    """The worker's health endpoints as a small app of their own."""
    app = FastAPI(title="renewals worker health", docs_url=None, redoc_url=None, openapi_url=None)
    add_health_routes(app, client, db, alive)
    return app


def health_server(address: str, client: Client, db: Database, alive: Callable[[], bool]) -> Any:
    """A uvicorn server for `health_app` on "host:port" (serve it with `await server.serve()`)."""
    import uvicorn

    from renewals.shutdown import embedded_server

    host, _, port = address.rpartition(":")
    config = uvicorn.Config(
        health_app(client, db, alive),
        host=host or "127.0.0.1",
        port=int(port),
        log_level="warning",
        log_config=None,  # its lines go through the process's handler (masked), not uvicorn's own
    )
    return embedded_server(config)  # the worker process owns the signals (renewals.shutdown)

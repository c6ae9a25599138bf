"""The gateway's HTTP side: one router per fake provider (SMSC-, VK-, robot- and portal-shaped APIs)
plus `/admin`, sharing one `Gateway`.

Each API answers exactly what the matching adapter in `renewals.channels` expects, including the
providers' error shapes, so the adapters are tested end to end against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from fake_providers import admin, email_api, partner_cabinet, portal, robot, smsc, vk
from fake_providers.gateway import Gateway, PortalAgent, PortalRenewal

__all__ = ["Gateway", "PortalAgent", "PortalRenewal", "create_app"]


def create_app(gateway: Gateway | None = None) -> FastAPI:
    """The app serving `gateway` (a new one by default), which its lifespan closes at shutdown."""
    gw = gateway or Gateway()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await gw.aclose()

    app = FastAPI(title="renewals fake provider gateway", lifespan=lifespan)
    app.state.gateway = gw
    for provider in (smsc, vk, robot, portal, admin):
        app.include_router(provider.router)
    app.include_router(email_api.router)  # the Unisender Go-shaped e-mail API (E, issue 13)
    app.include_router(partner_cabinet.router)  # the partner SLA's notice receiver (B, issue 13)
    return app

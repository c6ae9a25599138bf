"""`native_router`: the providers' own callback formats, one router per provider, under
`/webhooks/native/` — what `renewals.webhooks.app.create_app` includes beside our signed format."""

from __future__ import annotations

from fastapi import APIRouter

from renewals.webhooks.native import robot, smsc, vk
from renewals.webhooks.native.config import native_config
from renewals.webhooks.service import WebhookService

__all__ = ["native_config", "native_router"]


def native_router(service: WebhookService) -> APIRouter:
    routes = APIRouter()
    for provider in (smsc, vk, robot):
        routes.include_router(provider.router(service))
    return routes

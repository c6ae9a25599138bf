"""What the native routes share: the bounded body, handing a translated callback to the service, and
finding a client's latest message when a provider names the person rather than our message."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, NamedTuple

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select

from renewals.db.tables import OutboxRow
from renewals.webhooks.limits import read_body
from renewals.webhooks.native.config import NativeCallbacks, native_config
from renewals.webhooks.payloads import Callback, WebhookResult, shown
from renewals.webhooks.service import ClaimInFlight, UnknownJourney, WebhookService

log = logging.getLogger("renewals.webhooks.native")
# A route's keys: `settings.native_callbacks` (tests override `native_config`)
NativeSettings = Annotated[NativeCallbacks, Depends(native_config)]


async def bounded_body(request: Request) -> bytes:
    """The raw body, bounded as every webhook's is (`renewals.webhooks.limits.read_body`, 413 past
    the limit)."""
    return await read_body(request)


async def deliver(
    service: WebhookService, provider: str, source: str, callback: Callback
) -> WebhookResult | None:
    """The service's result, or None when the callback names no journey we know (logged: the provider
    is answered so that it stops retrying — see each route). A claim held by another copy is a 503,
    which every provider retries."""
    try:
        result = await service.handle(source, callback)
    except UnknownJourney as unknown:
        log.warning("%s callback %s for an unknown journey: %s", provider, shown(callback.event_id), unknown)
        return None
    except ClaimInFlight as busy:
        raise HTTPException(status_code=503, detail=str(busy), headers={"Retry-After": "30"}) from busy
    log.info("%s callback %s → %s (%s)", provider, shown(callback.event_id), result.journey_id, result.status)
    return result


class Sent(NamedTuple):
    key: str  # the outbox's dedup key: a callback's `message_id` the service resolves
    provider_message_id: str | None
    journey_id: str


async def latest_messages(
    service: WebhookService, channel: str, recipients: Iterable[str], limit: int = 20
) -> list[Sent]:
    """The latest messages of `channel` to any of `recipients`,
    newest first: how a reply, a read mark or a VK "deny" — which name the person, not our message —
    find the journey that wrote to them last."""
    wanted = sorted({r for r in recipients if r})
    if not wanted:
        return []
    async with service.db.session() as session:
        rows = (
            await session.execute(
                select(OutboxRow.dedup_key, OutboxRow.provider_message_id, OutboxRow.journey_id)
                .where(OutboxRow.channel == channel, OutboxRow.recipient.in_(wanted))
                .where(OutboxRow.status.in_(("sent", "pending")))
                .order_by(OutboxRow.updated_at.desc())
                .limit(limit)
            )
        ).all()
    return [Sent(row.dedup_key, row.provider_message_id, row.journey_id) for row in rows]

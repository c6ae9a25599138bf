"""The fake partner cabinet: receives the partner SLA's notices (`renewals.sla.notices.PartnerCabinet`).

`POST /partner-cabinet/notices` checks `X-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`
with the sandbox secret `channels=gateway` signs with (401 otherwise), needs an `Idempotency-Key`
(400 otherwise) and drops a repeated key as a real receiver should: the line is logged with
`"deduplicated": true` and the answer is the first notice's id. Every notice is a line of the
gateway's message log (channel `partner_cabinet`, `.data/gateway.jsonl` under `./run stack`).
Faults apply when `partner_cabinet` is among the fault config's channels.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fake_providers.faults import Fault
from fake_providers.gateway import Exchange, GatewayDep
from fake_providers.wire import http_error, http_fault
from renewals.sla.notices_config import CABINET_PATH, SANDBOX_SECRET
from renewals.webhooks.auth import SIGNATURE_HEADER, authentic

router = APIRouter()
CHANNEL = "partner_cabinet"


@router.post(CABINET_PATH)
async def partner_cabinet_notice(request: Request, gw: GatewayDep) -> Response:
    body = await request.body()
    key = request.headers.get("idempotency-key")
    await gw.faults.latency()
    if not authentic(SANDBOX_SECRET, body, request.headers.get(SIGNATURE_HEADER), None, False):
        gw.requests.add(CHANNEL, "notice", key, "-", "rejected:signature")
        return http_error(401, "unauthorized", "bad or missing signature")
    if not key:
        gw.requests.add(CHANNEL, "notice", None, "-", "rejected:no-key")
        return http_error(400, "bad_request", "Idempotency-Key is required")
    try:
        notice = json.loads(body)
    except json.JSONDecodeError:
        notice = None
    if not isinstance(notice, dict):
        gw.requests.add(CHANNEL, "notice", key, "-", "rejected:body")
        return http_error(400, "bad_request", "the body must be a JSON object")
    partner = str(notice.get("partner", "-"))
    exchange = Exchange(gw, CHANNEL, "notice", key, partner)
    fault = gw.faults.decide(CHANNEL)
    if (refused := http_fault(fault)) is not None:
        return exchange.answer(*refused)
    if fault is Fault.STALL:
        return await exchange.stall()
    record, first = gw.log.accept(
        CHANNEL,
        key,
        partner,
        str(notice.get("text", "")),
        lambda seq: f"notice-{seq}",
        dedup=True,
        meta={k: notice.get(k) for k in ("kind", "application_id", "clock", "due")},
    )
    await gw.accepted("notice", record, first, fault)
    return JSONResponse({"id": record.provider_id, "duplicate": not first})

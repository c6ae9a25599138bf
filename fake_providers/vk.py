"""The fake VK community-messages API: `messages.send`, the only method our adapter calls (VK's own
refusal, error 901, is the permission check), answering VK's `{"response": …}` / `{"error": …}` JSON;
a repeated `random_id` is dropped, as VK does. With `callback_format="native"` each new message is
reported as VK's Callback API does, by a `message_reply` event to `vk_webhook_url`."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fake_providers.faults import Fault
from fake_providers.gateway import Exchange, Gateway, GatewayDep
from fake_providers.request_log import MessageRecord
from fake_providers.wire import form_params

router = APIRouter()


def _error(code: int, text: str, params: dict[str, str]) -> JSONResponse:
    shown = [{"key": k, "value": v} for k, v in params.items() if k != "access_token"]
    return JSONResponse({"error": {"error_code": code, "error_msg": text, "request_params": shown}})


async def _open(request: Request, gw: Gateway) -> tuple[dict[str, str], Fault, tuple[str, Response] | None]:
    """The params, the fault drawn, and (outcome, answer) when the request is refused up front."""
    p = await form_params(request)
    await gw.faults.latency()
    if gw.config.vk_token is not None and p.get("access_token") != gw.config.vk_token:
        return p, Fault.NONE, ("rejected:5", _error(5, "User authorization failed: invalid access_token", p))
    fault = gw.faults.decide("vk")
    if fault is Fault.ERROR:
        return p, fault, ("error", _error(10, "Internal server error", p))
    if fault is Fault.RATE_LIMIT:
        return p, fault, ("rate_limit", _error(6, "Too many requests per second", p))
    return p, fault, None


@router.post("/method/messages.send")
async def vk_send(request: Request, gw: GatewayDep) -> Response:
    p, fault, refused = await _open(request, gw)
    user_id = p.get("user_id", "")
    key = f"{p['random_id']}:{user_id}" if "random_id" in p else None
    exchange = Exchange(gw, "vk", "send", key, user_id)
    if refused is not None:
        return exchange.answer(*refused)
    if fault is Fault.STALL:
        return await exchange.stall()
    if not user_id.isdigit() or key is None:
        return exchange.answer(
            "rejected:100", _error(100, "One of the parameters specified was missing or invalid", p)
        )
    if gw.faults.blocked(user_id):
        return exchange.answer(
            "rejected:901", _error(901, "Can't send messages for users without permission", p)
        )
    # VK drops a repeated random_id and answers the first message's id.
    record, first = gw.log.accept(
        "vk", key, user_id, p.get("message", ""), provider_id=lambda seq: str(seq), dedup=True
    )
    if first:
        _report_reply(gw, record, int(p["random_id"]))
    await gw.accepted("send", record, first, fault)
    return JSONResponse({"response": int(record.provider_id)})


def _report_reply(gw: Gateway, record: MessageRecord, random_id: int) -> None:
    """VK's Callback API `message_reply` for a message the community sent (VK posts one per outgoing
    message): `object.id` is what `messages.send` answered, the outbox's `provider_message_id`.
    Only with `callback_format="native"` and a `vk_webhook_url` — our signed format has no VK report."""
    if gw.config.callback_format != "native" or not gw.config.vk_webhook_url:
        return
    event = {
        "type": "message_reply",
        "object": {
            "id": int(record.provider_id),
            "date": int(record.accepted_at.timestamp()),
            "peer_id": int(record.recipient),
            "from_id": -gw.config.vk_group_id,
            "out": 1,
            "text": record.text,
            "random_id": random_id,
        },
        "group_id": gw.config.vk_group_id,
        "event_id": f"gw{record.seq}{gw.run_token}",
        "v": "5.199",
    }
    if gw.config.vk_callback_secret:
        event["secret"] = gw.config.vk_callback_secret
    body = json.dumps(event, ensure_ascii=False).encode()
    gw.post_raw(gw.config.vk_webhook_url, body, {"Content-Type": "application/json"})

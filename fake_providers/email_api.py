"""The fake transactional e-mail API, Unisender Go-shaped: `POST /ru/transactional/api/v1/email/send.json`
(`X-API-KEY`, `{"idempotence_key", "message": {"recipients", "body", …}}`), answering its JSON
(`{"status": "success", "job_id", "emails", "failed_emails"}` / `{"status": "error", "code", "message"}`)
and posting its status webhook: `delivered` (or `hard_bounced` for a blocked recipient, as the
receiving server's 550 would make it) and, for the share `open_rate` of messages, `opened`.

Like the real API it drops a repeated `idempotence_key`: the repeat's line in the message log says
`"deduplicated": true`, the answer is the first one's, no second message and no second webhook.
A request without a key is a new message every time. The webhook is in the provider's own format,
its `auth` the MD5 of the body with the API key in its place (`renewals.webhooks.email_api`), one
call per message with its events in order.

Configured per gateway (`configure(gateway, EmailApiSettings(...))`, `PUT /admin/email-api`), with
defaults from the environment so `python -m fake_providers` needs no flag of its own:
`GATEWAY_EMAIL_API_KEY` (the key it requires; unset: any), `GATEWAY_EMAIL_WEBHOOK_URL` (e.g.
`http://127.0.0.1:8080/webhooks/email-api`), `GATEWAY_EMAIL_WEBHOOK_KEY` (the key it signs with,
= the webhook service's secret `email_api`), `GATEWAY_EMAIL_OPEN_RATE` (default 0.5).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import weakref
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fake_providers.faults import Fault
from fake_providers.gateway import Exchange, Gateway, GatewayDep
from fake_providers.request_log import MessageRecord
from renewals.channels.email_http import API_KEY_HEADER, SEND_PATH
from renewals.webhooks.email_api import STATUS_EVENT, sign

API_PREFIX = "/ru/transactional/api/v1"
router = APIRouter()


class EmailApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str | None = Field(default_factory=lambda: os.environ.get("GATEWAY_EMAIL_API_KEY"))
    webhook_url: str | None = Field(default_factory=lambda: os.environ.get("GATEWAY_EMAIL_WEBHOOK_URL"))
    webhook_key: str | None = Field(default_factory=lambda: os.environ.get("GATEWAY_EMAIL_WEBHOOK_KEY"))
    # The share of delivered messages whose recipient opens them, decided by the key's hash (the
    # same message always opens or never does), so a journey's «не открыл письмо» sees both cases.
    open_rate: float = Field(
        default_factory=lambda: float(os.environ.get("GATEWAY_EMAIL_OPEN_RATE", "0.5")), ge=0, le=1
    )


_SETTINGS: weakref.WeakKeyDictionary[Gateway, EmailApiSettings] = weakref.WeakKeyDictionary()


def settings_of(gateway: Gateway) -> EmailApiSettings:
    """This gateway's API settings (the environment's until configured)."""
    found = _SETTINGS.get(gateway)
    if found is None:
        found = _SETTINGS[gateway] = EmailApiSettings()
    return found


def configure(gateway: Gateway, settings: EmailApiSettings) -> None:
    _SETTINGS[gateway] = settings


def _read(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The request, its `message` and its first recipient, each `{}` where the body has none."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    request = _object(body)
    message = _object(request.get("message"))
    recipients = message.get("recipients")
    return request, message, _object(recipients[0] if isinstance(recipients, list) and recipients else None)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "code": code, "message": message}, status_code=status)


def _address(raw: str) -> bool:
    """What the fake calls a valid address: one @, a dotted domain, no spaces."""
    local, at, domain = raw.partition("@")
    return bool(local and at and "." in domain and "@" not in domain and not any(c.isspace() for c in raw))


@router.post(API_PREFIX + SEND_PATH)
async def email_send(request: Request, gw: GatewayDep) -> Response:
    await gw.faults.latency()
    config = settings_of(gw)
    body, message, recipient = _read(await request.body())
    key = str(body.get("idempotence_key") or "") or None
    address = str(recipient.get("email") or "")
    exchange = Exchange(gw, "email", "send", key, address)
    if config.api_key is not None and request.headers.get(API_KEY_HEADER) != config.api_key:
        return exchange.answer("rejected:401", _error(401, 101, "Invalid API key"))
    content = _object(message.get("body"))
    text = content.get("plaintext")
    if not address or not isinstance(text, str):
        return exchange.answer(
            "rejected:400", _error(400, 102, "message.recipients[].email and message.body are required")
        )
    fault = gw.faults.decide("email")
    if fault is Fault.ERROR:
        return exchange.answer("error", _error(503, 901, "Service temporarily unavailable"))
    if fault is Fault.RATE_LIMIT:
        return exchange.answer("rate_limit", _error(429, 902, "Too many requests"))
    if fault is Fault.STALL:
        return await exchange.stall()
    if not _address(address):
        answer = {
            "status": "success",
            "job_id": _job_id(gw),
            "emails": [],
            "failed_emails": {address: "invalid"},
        }
        return exchange.answer("rejected:invalid", JSONResponse(answer))
    record, first = gw.log.accept(
        "email",
        key or f"auto-{secrets.token_hex(8)}",
        address,
        text,
        provider_id=lambda _: _job_id(gw),
        dedup=key is not None,
        subject=str(message.get("subject") or ""),
        meta={
            "html": content.get("html"),
            "metadata": recipient.get("metadata") or {},
            "track_read": message.get("track_read"),
        },
    )
    if first:
        _report(
            gw, config, record, blocked=gw.faults.blocked(address), tracked=bool(message.get("track_read"))
        )
    await gw.accepted("send", record, first, fault)
    return JSONResponse({"status": "success", "job_id": record.provider_id, "emails": [address]})


@router.get("/admin/email-api")
async def admin_email_api(gw: GatewayDep) -> EmailApiSettings:
    return settings_of(gw)


@router.put("/admin/email-api")
async def admin_set_email_api(gw: GatewayDep, settings: EmailApiSettings) -> EmailApiSettings:
    configure(gw, settings)
    return settings


def _job_id(gw: Gateway) -> str:
    return f"{gw.run_token}-{secrets.token_hex(6)}"


def opens(key: str, rate: float) -> bool:
    """Whether the recipient of the message with this key opens it: a fixed draw per key."""
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    return draw < rate


def signed(payload: dict[str, Any], api_key: str) -> dict[str, Any]:
    """`payload` with its `auth`: the MD5 of its serialisation with the key in that place. The gateway
    posts `json.dumps(…, ensure_ascii=False)` of the result, the same bytes but for that value."""
    with_key = {"auth": api_key, **payload}
    return {**with_key, "auth": sign(json.dumps(with_key, ensure_ascii=False).encode())}


def _report(
    gw: Gateway, config: EmailApiSettings, record: MessageRecord, blocked: bool, tracked: bool
) -> None:
    """The status webhook for one new message: one call in the default (batch) shape, its events in
    the order they happened (delivered, then opened; or the hard bounce)."""
    if not config.webhook_url or not config.webhook_key:
        return
    statuses = ["hard_bounced"] if blocked else ["delivered"]
    if not blocked and tracked and opens(record.key, config.open_rate):
        statuses.append("opened")
    events = []
    for status in statuses:
        data: dict[str, Any] = {
            "job_id": record.provider_id,
            "metadata": record.meta.get("metadata") or {},
            "email": record.recipient,
            "status": status,
            "event_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }
        if blocked:
            data["delivery_info"] = {
                "delivery_status": "err_user_unknown",
                "destination_response": "550 5.1.1 No such user",
            }
        events.append({"event_name": STATUS_EVENT, "event_data": data})
    payload = {"events_by_user": [{"user_id": 1, "project_id": "", "project_name": "", "events": events}]}
    gw.post_callback(config.webhook_url, signed(payload, config.webhook_key))

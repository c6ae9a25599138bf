"""SMSC.ru's handler callback («Передача статусов и сообщений на обработчик Клиента»,
https://smsc.ru/api/http/miscellaneous/callback/): after each delivery status of a message we sent,
and after each incoming SMS, SMSC POSTs a form to the URL set in the account's «Настройки».

- A status: `id` (the message id `send` gave SMSC, derived from our key), `phone`,
  `status` (SMSC's status code), `time`/`ts`, `err`, `cnt`, … Codes 1, 2, 4 (delivered, read, link
  clicked) become `message_delivered`; 3, 20, 22–25 (expired, undeliverable, bad number, forbidden,
  no funds, unreachable) `message_undelivered`; -1 and 0 (waiting, handed to the operator) are
  acknowledged and change nothing.
- An incoming SMS: `sms_id`, `phone`, `mes` (the text), `to`, … A reply reaches the journey that
  last wrote to that phone: STOP/СТОП is the opt-out, anything else a reply.

Authentication: SMSC's own. The handler URL configured at SMSC carries a secret key
(`?md5=<key>` or `?sha1=<key>`); SMSC then adds the form parameter of that name holding the hash of
`id:phone:status:<key>` (an incoming SMS: `sms_id:phone:mes:<key>`), which is compared in constant
time before anything is looked up. The form is decoded in the `charset` the URL names (SMSC's
default is windows-1251; configure `?charset=utf-8`).

Answers: 200 `OK` for everything SMSC should not send again — also a report for a message we do not
know (logged: SMSC would otherwise retry it for nothing); 401 for a bad hash, 400 for a form that is
not SMSC's, 503 while another copy of the same report is being processed (SMSC retries).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from renewals.channels.smsc import DeliveryStatus, parse_status_callback, smsc_message_id
from renewals.webhooks.native.common import NativeSettings, bounded_body, deliver, latest_messages, log
from renewals.webhooks.native.config import NativeCallbacks
from renewals.webhooks.payloads import SmsCallback
from renewals.webhooks.service import WebhookService

PATH = "/webhooks/native/smsc"
DEFAULT_CHARSET = "windows-1251"  # what SMSC sends when the handler URL names none
CHARSETS = {"utf-8": "utf-8", "koi8-r": "koi8-r", "windows-1251": "cp1251"}
STATUS_FIELDS = ("id", "phone", "status")
INCOMING_FIELDS = ("sms_id", "phone", "mes")
_HASHES: dict[str, Callable[[bytes], str]] = {
    "md5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "sha1": lambda data: hashlib.sha1(data, usedforsecurity=False).hexdigest(),
}
OK = "OK"
FORM = "application/x-www-form-urlencoded"


def smsc_hash(algorithm: str, values: list[str], key: str, charset: str = "utf-8") -> str:
    """SMSC's hash of a callback: the fields and the key joined by ':' (hex, lower case)."""
    return _HASHES[algorithm](":".join([*values, key]).encode(charset))


def read_form(body: bytes, charset: str) -> dict[str, str]:
    """The urlencoded form in SMSC's charset; 400 if it is not one (a repeated field keeps its last)."""
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=charset, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status_code=400, detail=f"not an urlencoded form in {charset}") from None
    return dict(pairs)


def authentic(
    config: NativeCallbacks, form: Mapping[str, str], fields: tuple[str, ...], charset: str
) -> bool:
    """The form's hash (the parameter named by `smsc_hash`) is the one our key gives: constant-time
    compare, hex in either case; no key configured or no hash sent is never authentic."""
    key = config.smsc_key.get_secret_value() if config.smsc_key else ""
    given = form.get(config.smsc_hash, "")
    if not key or not given:
        return False
    expected = smsc_hash(config.smsc_hash, [form.get(name, "") for name in fields], key, charset)
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())


def router(service: WebhookService) -> APIRouter:
    routes = APIRouter(tags=["webhooks: providers' own formats"])

    @routes.post(
        PATH,
        response_class=PlainTextResponse,
        summary="SMSC.ru: delivery statuses and incoming SMS, as SMSC's handler callback posts them",
        openapi_extra={"requestBody": {"required": True, "content": {FORM: {}}}},
    )
    async def smsc_callback(request: Request, settings: NativeSettings) -> PlainTextResponse:
        body = await bounded_body(request)
        charset = CHARSETS.get(request.query_params.get("charset", DEFAULT_CHARSET).lower())
        if charset is None:
            raise HTTPException(status_code=400, detail="charset: utf-8, koi8-r or windows-1251")
        form = read_form(body, charset)  # only the body: the URL's own `md5=<key>` is never read as a hash
        incoming = "sms_id" in form and "id" not in form
        if not authentic(settings, form, INCOMING_FIELDS if incoming else STATUS_FIELDS, charset):
            log.warning("rejected smsc callback: bad or missing %s", settings.smsc_hash)
            raise HTTPException(status_code=401, detail=f"smsc: bad or missing {settings.smsc_hash}")
        callback = await (_incoming(service, form) if incoming else _status(service, form))
        if callback is not None:
            await deliver(service, "smsc", "sms", callback)
        return PlainTextResponse(OK)

    return routes


async def _status(service: WebhookService, form: Mapping[str, str]) -> SmsCallback | None:
    """A status report as the service's callback; None for an intermediate status (nothing to tell).

    The message is found by its SMSC id, which the adapter derives from our key
    (`smsc_message_id(dedup_key)`): among our latest SMS to that phone first — so a report that
    arrives before the worker has recorded SMSC's answer still finds its (pending) row — else by the
    id the outbox recorded."""
    try:
        report = parse_status_callback(form)
    except ValueError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    kinds = {DeliveryStatus.DELIVERED: "delivered", DeliveryStatus.FAILED: "undelivered"}
    if report.status not in kinds:
        log.info(
            "smsc status %s for message %s: nothing to tell the journey",
            report.provider_status,
            report.message_id,
        )
        return None
    phone = "".join(c for c in report.phone if c.isdigit())
    sent = await latest_messages(service, "sms", (f"+{phone}", phone), limit=50) if phone else []
    ours = next((m.key for m in sent if str(smsc_message_id(m.key)) == report.message_id), None)
    event_id = f"smsc-{report.message_id}-{report.provider_status}"
    return _validated(event_id=event_id, message_id=ours or report.message_id, type=kinds[report.status])


async def _incoming(service: WebhookService, form: Mapping[str, str]) -> SmsCallback | None:
    """An incoming SMS as a reply to the latest SMS we sent that phone; None if we sent it none."""
    phone = "".join(c for c in form.get("phone", "") if c.isdigit())
    sms_id = form.get("sms_id", "").strip()
    if not phone or not sms_id.isdigit():
        raise HTTPException(status_code=400, detail="an incoming SMS needs a numeric sms_id and a phone")
    messages = await latest_messages(service, "sms", (f"+{phone}", phone))
    if not messages:
        log.warning("smsc incoming SMS %s from a number we sent nothing to", sms_id)
        return None
    return _validated(
        event_id=f"smsc-in-{sms_id}", message_id=messages[0].key, type="reply", text=form.get("mes", "")
    )


def _validated(**fields: str) -> SmsCallback:
    try:
        return SmsCallback.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in error.errors())
        raise HTTPException(status_code=400, detail=f"smsc callback: {problems}") from None

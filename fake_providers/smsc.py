"""The fake SMS provider, SMSC.ru-shaped: `/sys/send.php` and `/sys/status.php` (GET or POST form),
answering SMSC's JSON and its error codes, and posting a delivery report per SMS when configured —
in our signed JSON, or (`callback_format="native"`) as SMSC's own handler form."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fake_providers.config import GatewayConfig
from fake_providers.faults import Fault, digits
from fake_providers.gateway import Exchange, Gateway, GatewayDep
from fake_providers.request_log import MessageRecord
from fake_providers.wire import dialable, form_params
from renewals.webhooks.native.smsc import smsc_hash

router = APIRouter()


def _error(code: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text, "error_code": code})


def _authorised(config: GatewayConfig, p: dict[str, str]) -> bool:
    login = config.smsc_login
    return login is None or (p.get("login"), p.get("psw")) == (login, config.smsc_password)


def _fault_answer(fault: Fault, rate_limit_text: str) -> tuple[str, Response] | None:
    """(outcome, answer) under an injected error or rate limit (SMSC's code 9)."""
    if fault is Fault.ERROR:
        return "error", Response("Service Unavailable", status_code=503)
    if fault is Fault.RATE_LIMIT:
        return "rate_limit", _error(9, rate_limit_text)
    return None


@router.api_route("/sys/send.php", methods=["GET", "POST"])
async def smsc_send(request: Request, gw: GatewayDep) -> Response:
    p = await form_params(request)
    await gw.faults.latency()
    phone, client_id = digits(p.get("phones", "")), p.get("id") or ""
    exchange = Exchange(gw, "sms", "send", f"{client_id}:{phone}" if client_id else None, phone)
    if not _authorised(gw.config, p):
        return exchange.answer("rejected:2", _error(2, "authorise error"))
    if not phone or not p.get("mes"):
        return exchange.answer("rejected:1", _error(1, "parameters error"))
    fault = gw.faults.decide("sms")
    if (refused := _fault_answer(fault, "duplicate request, wait a minute")) is not None:
        return exchange.answer(*refused)
    if fault is Fault.STALL:
        return await exchange.stall()
    if gw.config.faults.insufficient_funds:
        return exchange.answer("rejected:3", _error(3, "no money"))
    if gw.faults.phone_invalid(phone) or not dialable(phone):
        return exchange.answer("rejected:7", _error(7, "invalid number"))
    # SMSC does not refuse a repeated id: a repeat is a second SMS, logged and reported as one.
    record, first = gw.log.accept(
        "sms",
        exchange.key or f"auto-{len(gw.log.records()) + 1}:{phone}",
        phone,
        p["mes"],
        provider_id=lambda seq: client_id or str(100000 + seq),
        dedup=False,
    )
    _report_delivery(gw, record)
    await gw.accepted("send", record, first, fault)
    return JSONResponse({"id": int(record.provider_id), "cnt": 1})


@router.api_route("/sys/status.php", methods=["GET", "POST"])
async def smsc_status(request: Request, gw: GatewayDep) -> Response:
    p = await form_params(request)
    await gw.faults.latency()
    phone = digits(p.get("phone", ""))
    key = f"{p.get('id', '')}:{phone}"
    exchange = Exchange(gw, "sms", "status", key, phone)
    if not _authorised(gw.config, p):
        return exchange.answer("rejected:2", _error(2, "authorise error"))
    fault = gw.faults.decide("sms")
    if (refused := _fault_answer(fault, "too many requests")) is not None:
        return exchange.answer(*refused)
    record = gw.log.get("sms", key)
    if record is None:
        return exchange.answer("not_found", _error(3, "message not found"))
    ts = int(record.accepted_at.timestamp())
    last_date = record.accepted_at.strftime("%d.%m.%Y %H:%M:%S")
    body = {"status": 1, "last_date": last_date, "last_timestamp": ts, "err": 0}
    return exchange.answer("found", JSONResponse(body))


def _report_delivery(gw: Gateway, record: MessageRecord) -> None:
    """A delivery report for one SMS, as `SmsCallback` (plus SMSC's own fields, for
    `parse_status_callback`), or — `callback_format="native"` — as SMSC's handler form itself.
    `message_id` is the SMSC id, which the outbox keeps as the row's `provider_message_id`."""
    if not gw.config.sms_webhook_url:
        return
    now = datetime.now(UTC)
    if gw.config.callback_format == "native":
        _report_natively(gw, record, now)
        return
    payload = {
        "event_id": f"gw-sms-{record.seq}-{gw.run_token}",
        "message_id": record.provider_id,
        "type": "delivered",
        "id": record.provider_id,
        "phone": record.recipient,
        "status": "1",
        "err": "0",
        "time": now.strftime("%d.%m.%Y %H:%M:%S"),
        "ts": str(int(now.timestamp())),
    }
    gw.post_callback(gw.config.sms_webhook_url, payload, gw.config.sms_webhook_secret)


def _report_natively(gw: Gateway, record: MessageRecord, now: datetime) -> None:
    """SMSC's handler callback: the form SMSC posts (id, phone, status, time, ts, err, cnt), with the
    `md5` of `id:phone:status:<key>` when a key is configured (`renewals.webhooks.native.smsc`)."""
    form = {
        "id": record.provider_id,
        "phone": record.recipient,
        "status": "1",
        "time": now.strftime("%d.%m.%Y %H:%M:%S"),
        "ts": str(int(now.timestamp())),
        "err": "0",
        "cnt": "1",
    }
    if gw.config.smsc_callback_key:
        values = [form["id"], form["phone"], form["status"]]
        form["md5"] = smsc_hash("md5", values, gw.config.smsc_callback_key)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    gw.post_raw(str(gw.config.sms_webhook_url), urlencode(form).encode(), headers)

"""The gateway's HTTP side: SMSC-, VK-, robot- and portal-shaped APIs plus `/admin`.

Each API answers exactly what the matching adapter in `renewals.channels` expects, including the
providers' error shapes, so the adapters are tested end to end against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import phonenumbers
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from fake_providers.config import FaultConfig, GatewayConfig
from fake_providers.faults import Fault, FaultInjector, digits
from fake_providers.store import MessageLog, MessageRecord, RequestLog, RequestRecord
from renewals.journey_api import RobotOutcome
from renewals.webhooks.auth import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)


class PortalRenewal(BaseModel):
    draft: bool = False
    quote: bool = False
    paid: bool = False


class PortalAgent(BaseModel):
    id: str
    name: str
    phone: str | None = None


class Gateway:
    """The gateway's state: message and request logs, faults, portal data, pending callbacks."""

    def __init__(self, config: GatewayConfig | None = None, callback_client: httpx.AsyncClient | None = None):
        self.config = config or GatewayConfig()
        self.log = MessageLog(self.config.log_path)
        self.requests = RequestLog()
        self.faults = FaultInjector(self.config.faults)
        self.renewals: dict[tuple[str, date], PortalRenewal] = {}
        self.agents: dict[str, PortalAgent] = {}
        self.robot_script: dict[str, list[RobotOutcome]] = {}  # phone digits → next outcomes
        self._callback_client = callback_client
        self._callbacks: set[asyncio.Task[None]] = set()
        self._run = secrets.token_hex(4)  # keeps callback event ids unique across gateway runs

    def configure_faults(self, faults: FaultConfig) -> None:
        self.config.faults = faults
        self.faults.configure(faults)

    async def drain_callbacks(self) -> None:
        """Wait for every callback posted so far (tests; shutdown)."""
        while self._callbacks:
            await asyncio.gather(*list(self._callbacks), return_exceptions=True)

    async def aclose(self) -> None:
        self.faults.release_hangs()
        await self.drain_callbacks()
        if self._callback_client is not None:
            await self._callback_client.aclose()

    def sms_delivered(self, record: MessageRecord) -> None:
        """A delivery report for one SMS, as `SmsCallback` (plus SMSC's own fields, for
        `parse_status_callback`). `message_id` is the SMSC id, which the outbox keeps as the row's
        `provider_message_id`."""
        if not self.config.sms_webhook_url:
            return
        now = datetime.now(UTC)
        payload = {
            "event_id": f"gw-sms-{record.seq}-{self._run}",
            "message_id": record.provider_id,
            "type": "delivered",
            "id": record.provider_id,
            "phone": record.recipient,
            "status": "1",
            "err": "0",
            "time": now.strftime("%d.%m.%Y %H:%M:%S"),
            "ts": str(int(now.timestamp())),
        }
        self.post_callback(self.config.sms_webhook_url, payload, self.config.sms_webhook_secret)

    def robot_finished(self, record: MessageRecord, outcome: RobotOutcome) -> None:
        """The call's outcome, as `RobotCallback` (plus the robot's own fields, for
        `parse_outcome_webhook`): `message_id` is our `client_task_id`, the outbox key of the call."""
        if not self.config.robot_webhook_url:
            return
        payload = {
            "event_id": f"gw-robot-{record.seq}-{self._run}",
            "message_id": record.key,
            "task_id": record.provider_id,
            "outcome": outcome.value,
            "client_task_id": record.key,
            "result": outcome.value,
        }
        self.post_callback(self.config.robot_webhook_url, payload, self.config.robot_webhook_secret)

    def post_callback(self, url: str, payload: dict[str, Any], secret: str | None = None) -> None:
        """POST the JSON in the background, signed like every source of our webhook service."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        task = asyncio.get_running_loop().create_task(self._post(url, body, headers))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Deliver one callback; 404 (the journey's row not there yet), 5xx and transport errors are
        retried with backoff, other 4xx (a bad signature) are not."""
        if self._callback_client is None:
            self._callback_client = httpx.AsyncClient(timeout=10.0)
        delay = self.config.callback_delay_seconds
        for attempt in range(self.config.callback_attempts):
            if delay:
                await asyncio.sleep(delay)
            delay = 0.5 * 2**attempt
            try:
                response = await self._callback_client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("callback failed: %s", type(exc).__name__)
                continue
            if response.status_code < 400:
                return
            log.warning("callback answered HTTP %s", response.status_code)
            if response.status_code != 404 and response.status_code < 500:
                return
        log.warning("callback given up after %d attempts", self.config.callback_attempts)

    async def accepted(self, endpoint: str, record: MessageRecord, first: bool, fault: Fault) -> None:
        """Note an accepted request; under the HANG fault hold the answer (accepted, answer lost)."""
        outcome = "hang" if fault is Fault.HANG else "accepted" if first else "repeat"
        self.requests.add(record.channel, endpoint, record.key, record.recipient, outcome)
        if fault is Fault.HANG:
            await self.faults.hang()

    async def stall(self, channel: str, endpoint: str, key: str | None, recipient: str) -> Response:
        """The timeout-before-accept fault: hold the request, then drop it unrecorded (504)."""
        self.requests.add(channel, endpoint, key, recipient, "stall")
        await self.faults.hang()
        return Response("Gateway Timeout", status_code=504)


async def _params(request: Request) -> dict[str, str]:
    """Query and urlencoded form merged (no python-multipart needed)."""
    params = dict(request.query_params)
    if request.method == "POST":
        body = (await request.body()).decode()
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


def _valid_phone(phone: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits(phone))))
    except phonenumbers.NumberParseException:
        return False


def _smsc_error(code: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text, "error_code": code})


def _vk_error(code: int, text: str, params: dict[str, str]) -> JSONResponse:
    shown = [{"key": k, "value": v} for k, v in params.items() if k != "access_token"]
    return JSONResponse({"error": {"error_code": code, "error_msg": text, "request_params": shown}})


def _http_error(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": text}}, status_code=status, headers=headers)


def _bearer_ok(request: Request, expected: str | None) -> bool:
    return expected is None or request.headers.get("authorization") == f"Bearer {expected}"


def create_app(gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or Gateway()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await gw.aclose()

    app = FastAPI(title="renewals sandbox gateway", lifespan=lifespan)
    app.state.gateway = gw

    # ---- SMS: SMSC.ru shape ------------------------------------------------------------------
    def smsc_auth_ok(p: dict[str, str]) -> bool:
        c = gw.config
        return c.smsc_login is None or (p.get("login"), p.get("psw")) == (c.smsc_login, c.smsc_password)

    @app.api_route("/sys/send.php", methods=["GET", "POST"])
    async def smsc_send(request: Request) -> Response:
        p = await _params(request)
        await gw.faults.latency()
        phone, client_id = digits(p.get("phones", "")), p.get("id") or ""
        key = f"{client_id}:{phone}" if client_id else None

        def answer(outcome: str, response: Response) -> Response:
            gw.requests.add("sms", "send", key, phone, outcome)
            return response

        if not smsc_auth_ok(p):
            return answer("rejected:2", _smsc_error(2, "authorise error"))
        if not phone or not p.get("mes"):
            return answer("rejected:1", _smsc_error(1, "parameters error"))
        fault = gw.faults.decide("sms")
        if fault is Fault.ERROR:
            return answer("error", Response("Service Unavailable", status_code=503))
        if fault is Fault.RATE_LIMIT:
            return answer("rate_limit", _smsc_error(9, "duplicate request, wait a minute"))
        if fault is Fault.STALL:
            return await gw.stall("sms", "send", key, phone)
        if gw.config.faults.insufficient_funds:
            return answer("rejected:3", _smsc_error(3, "no money"))
        if gw.faults.phone_invalid(phone) or not _valid_phone(phone):
            return answer("rejected:7", _smsc_error(7, "invalid number"))
        # SMSC does not refuse a repeated id: a repeat is a second SMS, logged and reported as one.
        record, first = gw.log.accept(
            "sms",
            key or f"auto-{len(gw.log.records()) + 1}:{phone}",
            phone,
            p["mes"],
            provider_id=lambda seq: client_id or str(100000 + seq),
            dedup=False,
        )
        gw.sms_delivered(record)
        await gw.accepted("send", record, first, fault)
        return JSONResponse({"id": int(record.provider_id), "cnt": 1})

    @app.api_route("/sys/status.php", methods=["GET", "POST"])
    async def smsc_status(request: Request) -> Response:
        p = await _params(request)
        await gw.faults.latency()
        phone = digits(p.get("phone", ""))
        key = f"{p.get('id', '')}:{phone}"

        def answer(outcome: str, response: Response) -> Response:
            gw.requests.add("sms", "status", key, phone, outcome)
            return response

        if not smsc_auth_ok(p):
            return answer("rejected:2", _smsc_error(2, "authorise error"))
        fault = gw.faults.decide("sms")
        if fault is Fault.ERROR:
            return answer("error", Response("Service Unavailable", status_code=503))
        if fault is Fault.RATE_LIMIT:
            return answer("rate_limit", _smsc_error(9, "too many requests"))
        record = gw.log.get("sms", key)
        if record is None:
            return answer("not_found", _smsc_error(3, "message not found"))
        ts = int(record.accepted_at.timestamp())
        last_date = record.accepted_at.strftime("%d.%m.%Y %H:%M:%S")
        body = {"status": 1, "last_date": last_date, "last_timestamp": ts, "err": 0}
        return answer("found", JSONResponse(body))

    # ---- VK: community messages -----------------------------------------------------------------
    async def vk_common(request: Request) -> tuple[dict[str, str], Fault, tuple[str, Response] | None]:
        """The params, the fault drawn, and (outcome, answer) when the request is refused up front."""
        p = await _params(request)
        await gw.faults.latency()
        if gw.config.vk_token is not None and p.get("access_token") != gw.config.vk_token:
            return (
                p,
                Fault.NONE,
                ("rejected:5", _vk_error(5, "User authorization failed: invalid access_token", p)),
            )
        fault = gw.faults.decide("vk")
        if fault is Fault.ERROR:
            return p, fault, ("error", _vk_error(10, "Internal server error", p))
        if fault is Fault.RATE_LIMIT:
            return p, fault, ("rate_limit", _vk_error(6, "Too many requests per second", p))
        return p, fault, None

    @app.post("/method/messages.isMessagesFromGroupAllowed")
    async def vk_allowed(request: Request) -> Response:
        p, fault, refused = await vk_common(request)
        user_id = p.get("user_id", "")
        if refused is not None:
            gw.requests.add("vk", "allowed", None, user_id, refused[0])
            return refused[1]
        if fault is Fault.STALL:
            return await gw.stall("vk", "allowed", None, user_id)
        blocked = gw.faults.blocked(user_id)
        gw.requests.add("vk", "allowed", None, user_id, "refused" if blocked else "allowed")
        return JSONResponse({"response": {"is_allowed": 0 if blocked else 1}})

    @app.post("/method/messages.send")
    async def vk_send(request: Request) -> Response:
        p, fault, refused = await vk_common(request)
        user_id = p.get("user_id", "")
        key = f"{p['random_id']}:{user_id}" if "random_id" in p else None

        def answer(outcome: str, response: Response) -> Response:
            gw.requests.add("vk", "send", key, user_id, outcome)
            return response

        if refused is not None:
            return answer(*refused)
        if fault is Fault.STALL:
            return await gw.stall("vk", "send", key, user_id)
        if not user_id.isdigit() or key is None:
            return answer(
                "rejected:100", _vk_error(100, "One of the parameters specified was missing or invalid", p)
            )
        if gw.faults.blocked(user_id):
            return answer(
                "rejected:901", _vk_error(901, "Can't send messages for users without permission", p)
            )
        # VK drops a repeated random_id and answers the first message's id.
        record, first = gw.log.accept(
            "vk", key, user_id, p.get("message", ""), provider_id=lambda seq: str(seq), dedup=True
        )
        await gw.accepted("send", record, first, fault)
        return JSONResponse({"response": int(record.provider_id)})

    # ---- Робот Даша: call tasks -----------------------------------------------------------------
    @app.post("/api/v1/call-tasks")
    async def robot_task(request: Request) -> Response:
        await gw.faults.latency()
        body = await request.json()
        phone = digits(str(body.get("phone", "")))
        client_task_id = str(body.get("client_task_id") or "")
        key = client_task_id or None

        def answer(outcome: str, response: Response) -> Response:
            gw.requests.add("robot", "call", key, phone, outcome)
            return response

        if not _bearer_ok(request, gw.config.robot_api_key):
            return answer("rejected:401", _http_error(401, "unauthorized", "invalid api key"))
        fault = gw.faults.decide("robot")
        if fault is Fault.ERROR:
            return answer("error", _http_error(503, "unavailable", "try later"))
        if fault is Fault.RATE_LIMIT:
            return answer("rate_limit", _http_error(429, "rate_limited", "slow down", {"Retry-After": "1"}))
        if fault is Fault.STALL:
            return await gw.stall("robot", "call", key, phone)
        if gw.config.faults.insufficient_funds:
            return answer("rejected:402", _http_error(402, "insufficient_funds", "top up the account"))
        if gw.faults.phone_invalid(phone) or not _valid_phone(phone):
            return answer("rejected:invalid_phone", _http_error(422, "invalid_phone", "invalid phone number"))
        if key is None:
            return answer(
                "rejected:invalid_request", _http_error(422, "invalid_request", "client_task_id is required")
            )
        # A repeated client_task_id answers the first task: no second call.
        record, first = gw.log.accept(
            "robot",
            key,
            phone,
            str(body.get("script", "")),
            provider_id=lambda seq: f"task-{seq}",
            dedup=True,
            meta={"attempt": body.get("attempt")},
        )
        if first:
            script = gw.robot_script.get(phone)
            gw.robot_finished(record, script.pop(0) if script else gw.config.robot_default_outcome)
        answer_body = {"task_id": record.provider_id, "status": "queued"}
        await gw.accepted("call", record, first, fault)
        return JSONResponse(answer_body, status_code=201 if first else 200)

    # ---- Альфа-Полис: agent portal ------------------------------------------------------------
    async def portal_guard(request: Request) -> Response | None:
        await gw.faults.latency()
        if not _bearer_ok(request, gw.config.portal_token):
            return _http_error(401, "unauthorized", "invalid token")
        fault = gw.faults.decide("portal")
        if fault is Fault.ERROR:
            return _http_error(503, "unavailable", "try later")
        if fault is Fault.RATE_LIMIT:
            return _http_error(429, "rate_limited", "slow down", {"Retry-After": "1"})
        if fault in (Fault.HANG, Fault.STALL):  # read-only: both just hold the answer
            await gw.faults.hang()
        return None

    @app.get("/api/v1/agents/{agent_id}")
    async def portal_agent(agent_id: str, request: Request) -> Response:
        if (error := await portal_guard(request)) is not None:
            return error
        agent = gw.agents.get(agent_id)
        if agent is None:
            return _http_error(404, "not_found", "no such agent")
        return JSONResponse(agent.model_dump())

    @app.get("/api/v1/renewals/{policy_number:path}")
    async def portal_renewal(policy_number: str, expires_on: date, request: Request) -> Response:
        if (error := await portal_guard(request)) is not None:
            return error
        renewal = gw.renewals.get((policy_number, expires_on))
        if renewal is None:
            return _http_error(404, "not_found", "no renewal started")
        return JSONResponse(renewal.model_dump())

    # ---- admin ----------------------------------------------------------------------------------
    @app.get("/admin/messages")
    async def admin_messages(channel: str | None = None, key: str | None = None) -> list[MessageRecord]:
        """Every logged line, repeats included."""
        return gw.log.records(channel, key)

    @app.get("/admin/stats")
    async def admin_stats() -> dict[str, Any]:
        """Per channel: lines, keys, repeats, deduplicated, messages; and every repeated key."""
        repeated = [{"channel": c, "key": k, "repeats": n} for (c, k), n in sorted(gw.log.repeats.items())]
        return {"channels": gw.log.stats(), "repeated": repeated}

    @app.get("/admin/requests")
    async def admin_requests(
        channel: str | None = None, key: str | None = None, recipient: str | None = None
    ) -> list[RequestRecord]:
        """Every request to a send-like endpoint and its outcome (memory only)."""
        return gw.requests.records(channel, key, recipient)

    @app.get("/admin/faults")
    async def admin_faults() -> FaultConfig:
        return gw.config.faults

    @app.put("/admin/faults")
    async def admin_set_faults(faults: FaultConfig) -> FaultConfig:
        gw.configure_faults(faults)
        return faults

    @app.post("/admin/release")
    async def admin_release() -> dict[str, bool]:
        gw.faults.release_hangs()
        return {"released": True}

    @app.put("/admin/portal/renewals/{policy_number:path}")
    async def admin_renewal(policy_number: str, expires_on: date, renewal: PortalRenewal) -> PortalRenewal:
        gw.renewals[(policy_number, expires_on)] = renewal
        return renewal

    @app.put("/admin/portal/agents/{agent_id}")
    async def admin_agent(agent_id: str, agent: PortalAgent) -> PortalAgent:
        gw.agents[agent_id] = agent
        return agent

    @app.put("/admin/robot/script/{phone}")
    async def admin_robot_script(phone: str, outcomes: list[RobotOutcome]) -> list[RobotOutcome]:
        gw.robot_script[digits(phone)] = list(outcomes)
        return outcomes

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app

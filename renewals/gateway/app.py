"""The gateway's HTTP side: SMSC-, VK-, robot- and portal-shaped APIs plus `/admin`.

Each API answers exactly what the matching adapter in `renewals.channels` expects, including the
providers' error shapes, so the adapters are tested end to end against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import phonenumbers
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from renewals.gateway.config import FaultConfig, GatewayConfig
from renewals.gateway.faults import Fault, FaultInjector, digits
from renewals.gateway.store import MessageLog, MessageRecord
from renewals.journey import RobotOutcome

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
    """The gateway's state: message log, faults, portal data, pending callbacks."""

    def __init__(self, config: GatewayConfig | None = None, callback_client: httpx.AsyncClient | None = None):
        self.config = config or GatewayConfig()
        self.log = MessageLog(self.config.log_path)
        self.faults = FaultInjector(self.config.faults)
        self.renewals: dict[tuple[str, date], PortalRenewal] = {}
        self.agents: dict[str, PortalAgent] = {}
        self.robot_script: dict[str, list[RobotOutcome]] = {}  # phone digits → next outcomes
        self._callback_client = callback_client
        self._callbacks: set[asyncio.Task[None]] = set()

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

    def post_callback(self, url: str, *, data: dict[str, str] | None = None, json: Any = None) -> None:
        task = asyncio.get_running_loop().create_task(self._post(url, data=data, json=json))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _post(self, url: str, *, data: dict[str, str] | None, json: Any) -> None:
        if self._callback_client is None:
            self._callback_client = httpx.AsyncClient(timeout=10.0)
        try:
            await self._callback_client.post(url, data=data, json=json)
        except httpx.HTTPError as exc:  # a callback is best effort, like the real providers'
            log.warning("callback failed: %s", type(exc).__name__)


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
    @app.api_route("/sys/send.php", methods=["GET", "POST"])
    async def smsc_send(request: Request) -> Response:
        p = await _params(request)
        await gw.faults.latency()
        c = gw.config
        if c.smsc_login is not None and (p.get("login"), p.get("psw")) != (c.smsc_login, c.smsc_password):
            return _smsc_error(2, "authorise error")
        if not p.get("phones") or not p.get("mes"):
            return _smsc_error(1, "parameters error")
        fault = gw.faults.decide("sms")
        if fault is Fault.ERROR:
            return Response("Service Unavailable", status_code=503)
        if fault is Fault.RATE_LIMIT:
            return _smsc_error(9, "duplicate request, wait a minute")
        if c.faults.insufficient_funds:
            return _smsc_error(3, "no money")
        phone = digits(p["phones"])
        if gw.faults.phone_invalid(phone) or not _valid_phone(phone):
            return _smsc_error(7, "invalid number")
        client_id = p.get("id") or ""
        key = f"{client_id}:{phone}" if client_id else f"auto-{len(gw.log.records()) + 1}:{phone}"
        record, new = gw.log.accept(
            "sms", key, phone, p["mes"], provider_id=lambda seq: client_id or str(100000 + seq)
        )
        if new and c.sms_webhook_url:
            now = datetime.now(UTC)
            gw.post_callback(
                c.sms_webhook_url,
                data={
                    "id": record.provider_id,
                    "phone": phone,
                    "status": "1",
                    "time": now.strftime("%d.%m.%Y %H:%M:%S"),
                    "ts": str(int(now.timestamp())),
                    "err": "0",
                },
            )
        if fault is Fault.HANG:
            await gw.faults.hang()
        return JSONResponse({"id": int(record.provider_id), "cnt": 1})

    @app.api_route("/sys/status.php", methods=["GET", "POST"])
    async def smsc_status(request: Request) -> Response:
        p = await _params(request)
        await gw.faults.latency()
        c = gw.config
        if c.smsc_login is not None and (p.get("login"), p.get("psw")) != (c.smsc_login, c.smsc_password):
            return _smsc_error(2, "authorise error")
        fault = gw.faults.decide("sms")
        if fault is Fault.ERROR:
            return Response("Service Unavailable", status_code=503)
        if fault is Fault.RATE_LIMIT:
            return _smsc_error(9, "too many requests")
        record = gw.log.get("sms", f"{p.get('id', '')}:{digits(p.get('phone', ''))}")
        if record is None:
            return _smsc_error(3, "message not found")
        ts = int(record.accepted_at.timestamp())
        return JSONResponse(
            {
                "status": 1,
                "last_date": record.accepted_at.strftime("%d.%m.%Y %H:%M:%S"),
                "last_timestamp": ts,
                "err": 0,
            }
        )

    # ---- VK: community messages -----------------------------------------------------------------
    async def vk_common(request: Request) -> tuple[dict[str, str], Response | None]:
        p = await _params(request)
        await gw.faults.latency()
        if gw.config.vk_token is not None and p.get("access_token") != gw.config.vk_token:
            return p, _vk_error(5, "User authorization failed: invalid access_token", p)
        fault = gw.faults.decide("vk")
        if fault is Fault.ERROR:
            return p, _vk_error(10, "Internal server error", p)
        if fault is Fault.RATE_LIMIT:
            return p, _vk_error(6, "Too many requests per second", p)
        return p, None

    @app.post("/method/messages.isMessagesFromGroupAllowed")
    async def vk_allowed(request: Request) -> Response:
        p, error = await vk_common(request)
        if error is not None:
            return error
        return JSONResponse({"response": {"is_allowed": 0 if gw.faults.blocked(p.get("user_id", "")) else 1}})

    @app.post("/method/messages.send")
    async def vk_send(request: Request) -> Response:
        p, error = await vk_common(request)
        if error is not None:
            return error
        user_id = p.get("user_id", "")
        if not user_id.isdigit() or "random_id" not in p:
            return _vk_error(100, "One of the parameters specified was missing or invalid", p)
        if gw.faults.blocked(user_id):
            return _vk_error(901, "Can't send messages for users without permission", p)
        record, _ = gw.log.accept(
            "vk",
            f"{p['random_id']}:{user_id}",
            user_id,
            p.get("message", ""),
            provider_id=lambda seq: str(seq),
        )
        return JSONResponse({"response": int(record.provider_id)})

    # ---- Робот Даша: call tasks -----------------------------------------------------------------
    @app.post("/api/v1/call-tasks")
    async def robot_task(request: Request) -> Response:
        await gw.faults.latency()
        if not _bearer_ok(request, gw.config.robot_api_key):
            return _http_error(401, "unauthorized", "invalid api key")
        body = await request.json()
        fault = gw.faults.decide("robot")
        if fault is Fault.ERROR:
            return _http_error(503, "unavailable", "try later")
        if fault is Fault.RATE_LIMIT:
            return _http_error(429, "rate_limited", "slow down", {"Retry-After": "1"})
        if gw.config.faults.insufficient_funds:
            return _http_error(402, "insufficient_funds", "top up the account")
        phone = str(body.get("phone", ""))
        if gw.faults.phone_invalid(phone) or not _valid_phone(phone):
            return _http_error(422, "invalid_phone", "invalid phone number")
        client_task_id = str(body.get("client_task_id") or "")
        if not client_task_id:
            return _http_error(422, "invalid_request", "client_task_id is required")
        record, new = gw.log.accept(
            "robot",
            client_task_id,
            phone,
            str(body.get("script", "")),
            provider_id=lambda seq: f"task-{seq}",
            meta={"attempt": body.get("attempt")},
        )
        if new and gw.config.robot_webhook_url:
            script = gw.robot_script.get(digits(phone))
            outcome = script.pop(0) if script else gw.config.robot_default_outcome
            gw.post_callback(
                gw.config.robot_webhook_url,
                json={
                    "task_id": record.provider_id,
                    "client_task_id": client_task_id,
                    "result": outcome.value,
                },
            )
        if fault is Fault.HANG:
            await gw.faults.hang()
        return JSONResponse(
            {"task_id": record.provider_id, "status": "queued"}, status_code=201 if new else 200
        )

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
        if fault is Fault.HANG:
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
        return gw.log.records(channel, key)

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

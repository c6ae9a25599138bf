"""The gateway's own API: what it logged (`/admin/messages`, `/admin/stats`, `/admin/requests`), the
faults it injects, the portal's data and the robot's script it serves, and `/healthz`."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter

from fake_providers.config import FaultConfig
from fake_providers.faults import digits
from fake_providers.gateway import GatewayDep, PortalAgent, PortalRenewal
from fake_providers.request_log import MessageRecord, RequestRecord
from renewals.journey_api import RobotOutcome

router = APIRouter()


@router.get("/admin/messages")
async def admin_messages(
    gw: GatewayDep, channel: str | None = None, key: str | None = None
) -> list[MessageRecord]:
    """Every logged line, repeats included."""
    return gw.log.records(channel, key)


@router.get("/admin/stats")
async def admin_stats(gw: GatewayDep) -> dict[str, Any]:
    """Per channel: lines, keys, repeats, deduplicated, messages; and every repeated key."""
    repeated = [{"channel": c, "key": k, "repeats": n} for (c, k), n in sorted(gw.log.repeats.items())]
    return {"channels": gw.log.stats(), "repeated": repeated}


@router.get("/admin/requests")
async def admin_requests(
    gw: GatewayDep, channel: str | None = None, key: str | None = None, recipient: str | None = None
) -> list[RequestRecord]:
    """Every request to a send-like endpoint and its outcome (memory only)."""
    return gw.requests.records(channel, key, recipient)


@router.get("/admin/faults")
async def admin_faults(gw: GatewayDep) -> FaultConfig:
    return gw.config.faults


@router.put("/admin/faults")
async def admin_set_faults(gw: GatewayDep, faults: FaultConfig) -> FaultConfig:
    gw.configure_faults(faults)
    return faults


@router.post("/admin/release")
async def admin_release(gw: GatewayDep) -> dict[str, bool]:
    gw.faults.release_hangs()
    return {"released": True}


@router.put("/admin/portal/renewals/{policy_number:path}")
async def admin_renewal(
    gw: GatewayDep, policy_number: str, expires_on: date, renewal: PortalRenewal
) -> PortalRenewal:
    gw.renewals[(policy_number, expires_on)] = renewal
    return renewal


@router.put("/admin/portal/agents/{agent_id}")
async def admin_agent(gw: GatewayDep, agent_id: str, agent: PortalAgent) -> PortalAgent:
    gw.agents[agent_id] = agent
    return agent


@router.put("/admin/robot/script/{phone}")
async def admin_robot_script(gw: GatewayDep, phone: str, outcomes: list[RobotOutcome]) -> list[RobotOutcome]:
    gw.robot_script[digits(phone)] = list(outcomes)
    return outcomes


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

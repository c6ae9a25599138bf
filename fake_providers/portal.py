"""The fake agent portal (Альфа-Полис), read-only: an agent's card and the renewal of a policy, as
`PUT /admin/portal/...` left them. Its faults only hold or refuse an answer; nothing is logged."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fake_providers.faults import Fault
from fake_providers.gateway import Gateway, GatewayDep
from fake_providers.wire import bearer_ok, http_error, http_fault

router = APIRouter()


async def _refusal(request: Request, gw: Gateway) -> Response | None:
    """The answer when the token is wrong or a fault refuses the request; None to go on."""
    await gw.faults.latency()
    if not bearer_ok(request, gw.config.portal_token):
        return http_error(401, "unauthorized", "invalid token")
    fault = gw.faults.decide("portal")
    if (refused := http_fault(fault)) is not None:
        return refused[1]
    if fault in (Fault.HANG, Fault.STALL):  # read-only: both just hold the answer
        await gw.faults.hang()
    return None


@router.get("/api/v1/agents/{agent_id}")
async def portal_agent(agent_id: str, request: Request, gw: GatewayDep) -> Response:
    if (error := await _refusal(request, gw)) is not None:
        return error
    agent = gw.agents.get(agent_id)
    if agent is None:
        return http_error(404, "not_found", "no such agent")
    return JSONResponse(agent.model_dump())


@router.get("/api/v1/renewals/{policy_number:path}")
async def portal_renewal(policy_number: str, expires_on: date, request: Request, gw: GatewayDep) -> Response:
    if (error := await _refusal(request, gw)) is not None:
        return error
    renewal = gw.renewals.get((policy_number, expires_on))
    if renewal is None:
        return http_error(404, "not_found", "no renewal started")
    return JSONResponse(renewal.model_dump())

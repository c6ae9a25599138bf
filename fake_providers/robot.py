"""The fake voice robot (Робот Даша): `POST /api/v1/call-tasks` queues a call; a repeated
`client_task_id` answers the first task and places no second call. The call's outcome is the next of
the number's script (`PUT /admin/robot/script/{phone}`) or the configured default, posted to our
webhook service when configured."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fake_providers.faults import Fault, digits
from fake_providers.gateway import Exchange, Gateway, GatewayDep
from fake_providers.request_log import MessageRecord
from fake_providers.wire import bearer_ok, dialable, http_error, http_fault
from renewals.journey_api import RobotOutcome

router = APIRouter()


@router.post("/api/v1/call-tasks")
async def robot_task(request: Request, gw: GatewayDep) -> Response:
    await gw.faults.latency()
    body = await request.json()
    phone = digits(str(body.get("phone", "")))
    key = str(body.get("client_task_id") or "") or None
    exchange = Exchange(gw, "robot", "call", key, phone)
    if not bearer_ok(request, gw.config.robot_api_key):
        return exchange.answer("rejected:401", http_error(401, "unauthorized", "invalid api key"))
    fault = gw.faults.decide("robot")
    if (refused := http_fault(fault)) is not None:
        return exchange.answer(*refused)
    if fault is Fault.STALL:
        return await exchange.stall()
    if gw.config.faults.insufficient_funds:
        return exchange.answer("rejected:402", http_error(402, "insufficient_funds", "top up the account"))
    if gw.faults.phone_invalid(phone) or not dialable(phone):
        return exchange.answer(
            "rejected:invalid_phone", http_error(422, "invalid_phone", "invalid phone number")
        )
    if key is None:
        return exchange.answer(
            "rejected:invalid_request", http_error(422, "invalid_request", "client_task_id is required")
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
        _report_outcome(gw, record, script.pop(0) if script else gw.config.robot_default_outcome)
    await gw.accepted("call", record, first, fault)
    return JSONResponse(
        {"task_id": record.provider_id, "status": "queued"}, status_code=201 if first else 200
    )


def _report_outcome(gw: Gateway, record: MessageRecord, outcome: RobotOutcome) -> None:
    """The call's outcome, as `RobotCallback` (plus the robot's own fields, for
    `parse_outcome_webhook`): `message_id` is our `client_task_id`, the outbox key of the call."""
    if not gw.config.robot_webhook_url:
        return
    if gw.config.callback_format == "native":  # the vendor's own result (renewals.webhooks.native.robot)
        result = {"task_id": record.provider_id, "client_task_id": record.key, "result": outcome.value}
        gw.post_callback(gw.config.robot_webhook_url, result, gw.config.robot_webhook_secret)
        return
    payload = {
        "event_id": f"gw-robot-{record.seq}-{gw.run_token}",
        "message_id": record.key,
        "task_id": record.provider_id,
        "outcome": outcome.value,
        "client_task_id": record.key,
        "result": outcome.value,
    }
    gw.post_callback(gw.config.robot_webhook_url, payload, gw.config.robot_webhook_secret)

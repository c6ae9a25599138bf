"""The voice robot vendor's result callback. No Russian robot vendor we looked at (Zvonobot,
Neuro.net, MTS Exolve, «Саша») publishes its result payload openly, so the vendor's format is the
one `renewals.channels.robot_http` already speaks — a Voximplant-style call list: one POST per
finished call task,

    {"task_id": "<the vendor's id, what `POST /api/v1/call-tasks` answered>",
     "client_task_id": "<our key of the call: journey id:touchpoint:robot_call>",
     "result": "agreed", …}

`result` is read by `parse_outcome_webhook`: agreed, refused, callback / callback_requested,
do_not_contact / do_not_call, busy, and no_answer / answered (hung up before a decision) /
voicemail / failed as «no answer». Authentication: the shared secret of the vendor's webhook
settings, as `X-Signature: sha256=<HMAC of the body>` or, where the vendor can only set a static
header, `Authorization: Bearer <secret>` — checked on the raw bytes before anything is parsed.
An outcome for a call we do not know is a 404 (the vendor retries: the call's outbox row may not be
committed yet), as our own format answers.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from renewals.channels.robot_http import parse_outcome_webhook
from renewals.webhooks.auth import SIGNATURE_HEADER, authentic
from renewals.webhooks.native.common import NativeSettings, bounded_body, deliver, log
from renewals.webhooks.payloads import RobotCallback, WebhookResult
from renewals.webhooks.service import WebhookService

PATH = "/webhooks/native/robot"


def router(service: WebhookService) -> APIRouter:
    routes = APIRouter(tags=["webhooks: providers' own formats"])

    @routes.post(
        PATH,
        response_model=WebhookResult,
        summary="Робот Даша: the robot vendor's call result (task_id, client_task_id, result)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
    )
    async def robot_result(request: Request, settings: NativeSettings) -> WebhookResult:
        body = await bounded_body(request)
        secret = settings.robot_secret.get_secret_value() if settings.robot_secret else None
        headers = request.headers
        if not authentic(secret, body, headers.get(SIGNATURE_HEADER), headers.get("authorization")):
            log.warning("rejected robot result: bad or missing signature")
            raise HTTPException(status_code=401, detail="robot: bad or missing signature")
        callback = _callback(body)
        result = await deliver(service, "robot", "robot", callback)
        if result is None:
            raise HTTPException(status_code=404, detail="robot: unknown call")
        return result

    return routes


def _callback(body: bytes) -> RobotCallback:
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        outcome = parse_outcome_webhook(payload)
        return RobotCallback(
            event_id=f"{outcome.task_id}:{outcome.outcome.value}",
            message_id=outcome.client_task_id,
            task_id=outcome.task_id,
            outcome=outcome.outcome,
        )
    except ValidationError as error:
        fields = ", ".join(".".join(map(str, p["loc"])) for p in error.errors())
        raise HTTPException(status_code=422, detail=f"robot result: invalid {fields}") from None
    except ValueError as error:  # not JSON, not an object, no ids, an unknown result
        raise HTTPException(status_code=422, detail=f"robot result: {error}"[:200]) from None

"""The partner cabinet's status changes over HTTP: `POST /partners/{partner}/applications/{id}/status`.

The way in docs/sla.md promises beside `renewals sla status … --to`: the same validated update
(`change_status`, by its wire name in `renewals.sla.application_api`) on the application's journey
`sla-<partner>-<application>`.

In order, and nothing is stored or sent to the journey before the request has passed each step:

1. the body is read bounded (`MAX_BODY`; 413 beyond) — nothing is parsed yet;
2. it must be signed by the partner cabinet, `X-Signature: sha256=<hex HMAC-SHA256(secret, raw
   body)>` with the webhook secret of the source `partners` (`RENEWALS_WEBHOOK_SECRETS`): 401;
3. the path's ids and the body (`status`, `by`, optional `reason` and `at` with an offset) are
   validated: 422 naming the field (`["body", "status"]`, …), never echoing the input;
4. the journey's own validator refuses a move the process forbids (backwards, a repeat, issued
   before paid, a moment the calendar cannot count): 422 with its reason — an update refused by its
   validator never enters the workflow's history;
5. an application with no journey is 404, one whose journey has finished 409; a worker that does
   not answer within the timeout 504.

200 answers the application's status after the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from renewals.sla import application_api as api
from renewals.sla.models import ApplicationStatus, SlaStatus, StatusChange, application_workflow_id
from renewals.webhooks.auth import SIGNATURE_HEADER, authentic
from renewals.webhooks.limits import read_body

log = logging.getLogger(__name__)


def signed_message(path: str, body: bytes) -> bytes:
    """What the partner signs: the request's path, a newline, the raw body (HMAC-SHA256, hex, in
    `X-Signature: sha256=…`), so a signature holds for one application's one change only."""
    return path.encode() + b"\n" + body


SOURCE = "partners"  # its secret's key in RENEWALS_WEBHOOK_SECRETS
ROUTE = "/partners/{partner}/applications/{application_id}/status"
MAX_BODY = 16 * 1024  # a status change is a few hundred bytes
_ID = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


class PartnerStatusChange(BaseModel):
    """The body: the new status, who changed it and why, and when it happened (if known)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)

    status: SlaStatus
    by: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=1000)
    at: AwareDatetime | None = None


class PartnerClock(BaseModel):
    name: str
    due: datetime
    stopped: datetime | None
    breached: bool


class PartnerStatusResult(BaseModel):
    """What the cabinet needs to show: the status and the SLA clocks (no staff names)."""

    workflow_id: str
    application_id: str
    partner: str
    status: SlaStatus
    finished: bool
    breaches: int
    clocks: list[PartnerClock]

    @classmethod
    def of(cls, status: ApplicationStatus) -> PartnerStatusResult:
        return cls(
            workflow_id=status.workflow_id,
            application_id=status.id,
            partner=status.partner,
            status=status.status,
            finished=status.finished,
            breaches=status.breaches,
            clocks=[
                PartnerClock(name=c.name, due=c.due, stopped=c.stopped, breached=c.breached)
                for c in status.clocks
            ],
        )


def partner_router(client: Client, secrets: Mapping[str, str], timeout_seconds: float = 30.0) -> APIRouter:
    """The route, authenticated with `secrets["partners"]`; `timeout_seconds` bounds the wait for
    the journey's worker to answer the update."""
    router = APIRouter(tags=["partners"])

    @router.post(
        ROUTE,
        response_model=PartnerStatusResult,
        summary="Partner cabinet: an application's status change (signed; validated by the journey)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PartnerStatusChange.model_json_schema()}},
            }
        },
        responses={401: {}, 404: {}, 409: {}, 413: {}, 422: {}, 504: {}},
    )
    async def change_status(partner: str, application_id: str, request: Request) -> PartnerStatusResult:
        body = await read_body(request, MAX_BODY)
        # The path is signed with the body: a captured change cannot be replayed on another application.
        signed = signed_message(request.url.path, body)
        if not authentic(secrets.get(SOURCE), signed, request.headers.get(SIGNATURE_HEADER), None, False):
            log.warning("rejected partner status change: bad or missing signature")
            raise HTTPException(status_code=401, detail=f"{SOURCE}: bad or missing signature")
        change = _validated(partner, application_id, body)
        workflow_id = application_workflow_id(partner, application_id)
        label = f"application {application_id} of partner {partner}"
        handle = client.get_workflow_handle(workflow_id)
        try:
            async with asyncio.timeout(timeout_seconds):
                status = await handle.execute_update(
                    api.CHANGE_STATUS_UPDATE, change, result_type=ApplicationStatus
                )
        except WorkflowUpdateFailedError as error:
            reason = error.cause.message if isinstance(error.cause, FailureError) else str(error)
            raise HTTPException(status_code=422, detail=reason) from None
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            with contextlib.suppress(RPCError):
                described = await handle.describe()
                state = described.status.name.lower() if described.status else "closed"
                finished = (
                    f"{label}: its journey has finished ({state}); {change.status.value} is not possible"
                )
                raise HTTPException(status_code=409, detail=finished) from None
            missing = f"{label}: not found (workflow {workflow_id})"
            raise HTTPException(status_code=404, detail=missing) from None
        except TimeoutError:
            raise HTTPException(
                status_code=504,
                detail=f"{label}: the journey's worker did not answer in {timeout_seconds:.0f} s",
            ) from None
        log.info("partner status change: %s → %s", workflow_id, status.status.value)
        return PartnerStatusResult.of(status)

    return router


def _validated(partner: str, application_id: str, body: bytes) -> StatusChange:
    """The path's ids and the body, or a 422 naming every bad field (the input never echoed)."""
    problems: list[dict[str, object]] = [
        {"type": "value_error", "loc": ("path", name), "msg": "must be 1 to 100 printable characters"}
        for name, value in (("partner", partner), ("application_id", application_id))
        if not _ID.fullmatch(value) or not value.strip()
    ]
    try:
        parsed = PartnerStatusChange.model_validate_json(body)
    except ValidationError as error:
        problems += [
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]}
            for e in error.errors(include_input=False, include_url=False)
        ]
        raise RequestValidationError(problems) from None
    if problems:
        raise RequestValidationError(problems)
    return StatusChange(status=parsed.status, by=parsed.by, reason=parsed.reason, at=parsed.at)

"""The HTTP service: provider callbacks, robot outcomes and agent-portal events → journey signals, plus
the operator workbench API. OpenAPI at `/openapi.json`, docs at `/docs` (served locally, no CDN needed
for the JSON)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from temporalio.client import Client

from renewals.db.database import Database
from renewals.operators.api import operator_router
from renewals.operators.workbench import Workbench
from renewals.webhooks.auth import authentic
from renewals.webhooks.payloads import CALLBACKS, Callback, WebhookResult
from renewals.webhooks.service import UnknownJourney, WebhookService

log = logging.getLogger(__name__)
SUMMARIES = {
    "sms": "SMS gateway: delivery status and replies (STOP = opt-out)",
    "email": "E-mail provider: delivered, bounced, opened",
    "vk": "VK community messages: delivered, read, reply",
    "robot": "Робот Даша: call outcome",
    "portal": "Альфа-Полис: draft, quote, payment, renewal",
}


def _authenticator(secrets: Mapping[str, str], source: str) -> Callable[..., Awaitable[None]]:
    async def verify(
        request: Request,
        x_signature: str | None = Header(None, description="sha256=<hex HMAC-SHA256(secret, body)>"),
        authorization: str | None = Header(None, description="Bearer <secret>, if the source cannot sign"),
    ) -> None:
        body = await request.body()
        if not authentic(secrets.get(source), body, x_signature, authorization):
            log.warning("rejected %s callback: bad or missing signature", source)
            raise HTTPException(status_code=401, detail=f"{source}: bad or missing signature")

    return verify


async def _invalid_request(_: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422, without the `input` it echoes: a callback carries a client's reply and the
    provider's copy of the address, which an error answer has no need to repeat."""
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    detail = [{key: problem[key] for key in ("type", "loc", "msg") if key in problem} for problem in problems]
    return JSONResponse(status_code=422, content={"detail": detail})


def create_app(db: Database, client: Client, secrets: Mapping[str, str]) -> FastAPI:
    """`secrets` maps a source (sms, email, vk, robot, portal, operators) to its shared secret."""
    app = FastAPI(
        title="Prolongation journeys: webhooks and operator workbench",
        version="1",
        description="Callbacks become signals to the right renewal journey; operators record outcomes.",
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    service = WebhookService(db, client)

    async def deliver(source: str, callback: Callback) -> WebhookResult:
        try:
            result = await service.handle(source, callback)
        except UnknownJourney as unknown:
            log.warning("%s callback %s for an unknown journey: %s", source, callback.event_id, unknown)
            raise HTTPException(status_code=404, detail=str(unknown)) from unknown
        log.info("%s callback %s → %s (%s)", source, callback.event_id, result.journey_id, result.status)
        return result

    def route(source: str, model: type[Callback], summary: str) -> None:
        verify = _authenticator(secrets, source)

        async def receive(callback: Callback, _: None = Depends(verify)) -> WebhookResult:
            return await deliver(source, callback)

        # FastAPI reads the body model from the annotation: give it this source's model itself
        # (string annotations from `from __future__ import annotations` would not resolve here).
        receive.__annotations__ = {"callback": model, "_": None, "return": WebhookResult}

        app.post(f"/webhooks/{source}", response_model=WebhookResult, summary=summary, tags=["webhooks"])(
            receive
        )

    for source, model in CALLBACKS.items():
        route(source, model, SUMMARIES[source])
    app.include_router(operator_router(Workbench(db, client), _authenticator(secrets, "operators")))

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app

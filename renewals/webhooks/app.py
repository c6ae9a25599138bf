"""The HTTP service: provider callbacks, robot outcomes and agent-portal events → journey signals, plus
the operator workbench API. OpenAPI at `/openapi.json`, docs at `/docs` (served locally, no CDN needed
for the JSON)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import Client

from renewals.db.database import Database
from renewals.observability.webhooks import instrument_app
from renewals.operators.api import operator_router
from renewals.operators.workbench import Workbench
from renewals.webhooks import email_api
from renewals.webhooks.auth import BEARER_SOURCES, SIGNATURE_HEADER, authentic
from renewals.webhooks.email_api import email_api_router
from renewals.webhooks.limits import BodyLimit, read_body
from renewals.webhooks.native.routes import native_router
from renewals.webhooks.partners import partner_router
from renewals.webhooks.payloads import CALLBACKS, Callback, WebhookResult, shown
from renewals.webhooks.service import ClaimInFlight, UnknownJourney, WebhookService

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # a callback is a few hundred bytes; nothing larger is read, let alone parsed
SUMMARIES = {
    "sms": "SMS gateway: delivery status and replies (STOP = opt-out)",
    "email": "E-mail provider: delivered, bounced, opened",
    "vk": "VK community messages: delivered, read, reply",
    "robot": "Робот Даша: call outcome",
    "portal": "Альфа-Полис: draft, quote, payment, renewal",
}


def check(secrets: Mapping[str, str], source: str, request: Request, body: bytes) -> None:
    """401 unless the raw body is signed (or carries the bearer secret, for the sources allowed one)."""
    headers = request.headers
    signature, authorization = headers.get(SIGNATURE_HEADER), headers.get("authorization")
    if not authentic(secrets.get(source), body, signature, authorization, source in BEARER_SOURCES):
        log.warning("rejected %s callback: bad or missing signature", source)
        raise HTTPException(status_code=401, detail=f"{source}: bad or missing signature")


def _authenticator(secrets: Mapping[str, str], source: str) -> Callable[..., Awaitable[None]]:
    async def verify(
        request: Request,
        x_signature: str | None = Header(None, description="sha256=<hex HMAC-SHA256(secret, body)>"),
        authorization: str | None = Header(None, description="Bearer <secret>, if the source cannot sign"),
    ) -> None:
        check(secrets, source, request, await read_body(request, MAX_BODY))

    return verify


def _parse(model: type[Callback], body: bytes) -> Callback:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_input=False)) from None


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
    # every route, before FastAPI reads a body; Unisender Go's batched webhook bounds its own read
    app.add_middleware(BodyLimit, limit=MAX_BODY, paths={email_api.ROUTE: email_api.MAX_BODY})
    service = WebhookService(db, client)

    async def deliver(source: str, callback: Callback) -> WebhookResult:
        try:
            result = await service.handle(source, callback)
        except UnknownJourney as unknown:
            event = shown(callback.event_id)
            log.warning("%s callback %s for an unknown journey: %s", source, event, unknown)
            raise HTTPException(status_code=404, detail=str(unknown)) from unknown
        except ClaimInFlight as busy:
            # another copy holds the claim (or its holder died): the provider retries, and a retry
            # after the lease finishes the work
            raise HTTPException(status_code=503, detail=str(busy), headers={"Retry-After": "30"}) from busy
        event = shown(callback.event_id)
        log.info("%s callback %s → %s (%s)", source, event, result.journey_id, result.status)
        return result

    def route(source: str, model: type[Callback], summary: str) -> None:
        async def receive(request: Request) -> WebhookResult:
            """Bounded read, signature on the raw bytes, only then the parser: an unsigned caller
            costs at most `MAX_BODY` bytes and learns nothing about the schema."""
            body = await read_body(request, MAX_BODY)
            check(secrets, source, request, body)
            return await deliver(source, _parse(model, body))

        body_schema = {"$ref": f"#/components/schemas/{model.__name__}"}
        app.post(
            f"/webhooks/{source}",
            response_model=WebhookResult,
            summary=summary,
            tags=["webhooks"],
            openapi_extra={
                "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}
            },
        )(receive)

    for source, model in CALLBACKS.items():
        route(source, model, SUMMARIES[source])
    _document_bodies(app)
    app.include_router(operator_router(Workbench(db, client), _authenticator(secrets, "operators")))
    app.include_router(email_api_router(db, client, secrets))  # Unisender Go's own format (E, issue 13)
    app.include_router(native_router(service))  # SMSC, VK Callback API, robot vendor formats (D, issue 13)
    app.include_router(partner_router(client, secrets))  # partner cabinet status changes (B, issue 13)
    instrument_app(app, db, client)  # /metrics, /health/live|ready, /status, callback counts (G, issue 15)

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _document_bodies(app: FastAPI) -> None:
    """The callback models in the OpenAPI components (the routes read the raw body themselves)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in CALLBACKS.values():
                own = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(own.pop("$defs", {}))
                components[model.__name__] = own
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

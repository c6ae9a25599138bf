"""The webhook service's own observability: `/metrics`, `/health/live`, `/health/ready` and the
`/status` page, and the counting of every callback by source and result.

The webhook service has no Temporal worker and so no SDK metrics endpoint of its own (its client's
runtime may be shared with a worker, as under `./run stack`): it serves `/metrics` itself with
`prometheus_client`, from a registry of its own app (two apps in one process never mix numbers).

A callback is counted by an ASGI middleware once its answer is known, so every route — our signed
JSON, the providers' native formats, Unisender Go's — is counted the same way, before FastAPI's
handlers and the body-size limit included:

| answer | result |
|---|---|
| 200 with `{"status": "accepted" / "duplicate" / "journey_finished"}` | that status |
| any other 2xx (a native route's plain "ok") | accepted |
| 401, 403 (bad or missing signature or secret) | refused |
| 400, 413, 422 (malformed, too large) | rejected |
| 404 (no journey has that message) | unknown_journey |
| 503 (another copy holds the claim: the provider retries) | busy |
| other 5xx | error |
"""

from __future__ import annotations

import json
import time
from functools import cached_property

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from renewals.db.database import Database
from renewals.observability.gauges import DatabaseGauges
from renewals.observability.health import add_health_routes
from renewals.observability.metrics import BY_NAME
from renewals.observability.status_page import render_status_page

PREFIX = "/webhooks/"
RESULTS = {"accepted", "duplicate", "journey_finished"}


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = Counter(
            "renewals_webhook_callbacks",
            BY_NAME["renewals_webhook_callbacks_total"].help,
            ("source", "result"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "renewals_webhook_request_duration_seconds",
            BY_NAME["renewals_webhook_request_duration_seconds"].help,
            ("source",),
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )


def result_of(status: int, body: bytes) -> str:
    if 200 <= status < 300:
        if body[:1] == b"{":
            try:
                answer = json.loads(body).get("status")
            except (ValueError, AttributeError):
                answer = None
            if answer in RESULTS:
                return str(answer)
        return "accepted"
    if status in (401, 403):
        return "refused"
    if status in (400, 413, 422):
        return "rejected"
    if status == 404:
        return "unknown_journey"
    if status == 503:
        return "busy"
    return "error"


class CallbackCounting:
    """ASGI middleware: times and counts each request under `/webhooks/` by its route's source."""

    def __init__(self, app: ASGIApp, metrics: WebhookMetrics, service: FastAPI) -> None:
        self.app = app
        self.metrics = metrics
        self.service = service

    @cached_property
    def sources(self) -> frozenset[str]:
        """The sources of the service's callback routes, read at the first request (every router is
        included by then): the `source` label's closed set; any other path counts as "other"."""
        return frozenset(
            source_of(path)
            for route in self.service.routes
            if (path := getattr(route, "path", "")).startswith(PREFIX) and "{" not in path
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX) or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        source = source_of(path)
        source = source if source in self.sources else "other"
        started = time.perf_counter()
        status = 500
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and len(body) < 4096:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.duration.labels(source).observe(time.perf_counter() - started)
            self.metrics.callbacks.labels(source, result_of(status, bytes(body))).inc()


def source_of(path: str) -> str:
    """/webhooks/sms → sms, /webhooks/email-api → email_api, /webhooks/native/smsc → native_smsc."""
    return path[len(PREFIX) :].strip("/").replace("/", "_").replace("-", "_")


def instrument_app(app: FastAPI, db: Database, client: Client) -> WebhookMetrics:
    """Add the callback counting, `/metrics`, the health endpoints and `/status` to the service.
    The callback routes' paths bound the `source` label (read at the first request)."""
    metrics = WebhookMetrics()
    app.add_middleware(CallbackCounting, metrics=metrics, service=app)
    add_health_routes(app, client, db)
    gauges = DatabaseGauges(db, client)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics of this service")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status", tags=["service"], summary="status page: journeys, today's sends, pauses, backlog")
    async def status_page() -> HTMLResponse:
        return HTMLResponse(render_status_page(await gauges.read()))

    return metrics


def counted(metrics: WebhookMetrics) -> dict[tuple[str, str], float]:
    """The callback counter's values by (source, result) — for tests and the status page."""
    values: dict[tuple[str, str], float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "renewals_webhook_callbacks_total":
                values[(sample.labels["source"], sample.labels["result"])] = sample.value
    return values

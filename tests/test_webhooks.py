"""Webhooks end-to-end on the local dev server: each source's callback reaches a running journey as a
signal; signatures are checked; a repeated callback changes nothing; an unknown policy gets a 404."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.journey import JourneyActivities
from renewals.db.database import Database
from renewals.db.policies import upsert_policy
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.journey import JourneyStatus, Stage
from renewals.models import Policy
from renewals.search_attributes import ALL
from renewals.sendwindow import SendWindow
from renewals.webhooks.app import create_app
from renewals.webhooks.auth import sign
from starter.binaries import find_binary
from starter.journeys import start_journey
from starter.runtime import cli_runtime
from tests.factories import policy
from worker import build_worker, sandbox_channels

QUEUE = "webhook-test"
SECRETS = {s: f"secret-{s}" for s in ("sms", "email", "vk", "robot", "portal", "operators")}


@dataclass
class Stack:
    client: Client
    db: Database
    http: httpx.AsyncClient

    async def journey(self, number: str, **overrides: Any) -> tuple[Policy, str]:
        p = policy(
            "KASKO",
            number=number,
            renewal_centre=True,
            expires_on=(date.today() + timedelta(days=40)).isoformat(),
            **overrides,
        )
        await upsert_policy(self.db, p)
        handle = await start_journey(self.client, p, QUEUE, SendWindow())
        return p, handle.id

    async def post(self, source: str, payload: dict[str, Any], secret: str | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        signature = sign(secret or SECRETS[source], body)
        return await self.http.post(
            f"/webhooks/{source}",
            content=body,
            headers={"Content-Type": "application/json", "X-Signature": signature},
        )

    async def status(self, workflow_id: str) -> JourneyStatus:
        handle = self.client.get_workflow_handle(workflow_id)
        status: JourneyStatus = await handle.query("status", result_type=JourneyStatus)
        return status


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=list(ALL),
        data_converter=pydantic_data_converter,
        runtime=cli_runtime(),
        ui=False,
    )
    path: Path = tmp_path_factory.mktemp("webhooks")
    db = Database(f"sqlite+aiosqlite:///{path}/webhooks.db")
    await db.migrate()
    app = create_app(db, env.client, SECRETS)
    try:
        async with (
            build_worker(env.client, QUEUE, JourneyActivities(db, sandbox_channels(db))),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks") as http,
        ):
            yield Stack(env.client, db, http)
    finally:
        await db.dispose()
        await env.shutdown()


async def add_outbox(db: Database, workflow_id: str, touchpoint: str, channel: str) -> str:
    key = f"{workflow_id}:{touchpoint}:{channel}"
    now = datetime.now(UTC)
    async with db.session() as session, session.begin():
        session.add(
            OutboxRow(
                dedup_key=key,
                journey_id=workflow_id,
                touchpoint=touchpoint,
                channel=channel,
                recipient="x",
                template="centre_email_30",
                status="sent",
                created_at=now,
                updated_at=now,
            )
        )
    return key


async def test_sms_delivery_is_a_fact_and_stop_reply_opts_out(stack: Stack) -> None:
    _, workflow_id = await stack.journey("WH-SMS-1")
    message_id = await add_outbox(stack.db, workflow_id, "d-30-sms", "sms")
    delivered = await stack.post("sms", {"event_id": "smsc-1", "message_id": message_id, "type": "delivered"})
    assert delivered.status_code == 200
    assert delivered.json() == {"status": "accepted", "journey_id": workflow_id, "signal": None}

    stop = await stack.post(
        "sms", {"event_id": "smsc-2", "message_id": message_id, "type": "reply", "text": " stop "}
    )
    assert stop.json()["signal"] == "event"
    result = await stack.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
    assert result.stage is Stage.OPTED_OUT
    async with stack.db.session() as session:
        facts = (await session.execute(select(WebhookEventRow.kind, WebhookEventRow.touchpoint))).all()
    assert ("delivered", "d-30-sms") in facts and ("opt_out", "d-30-sms") in facts


async def test_sms_reply_other_than_stop_is_engagement(stack: Stack) -> None:
    p, workflow_id = await stack.journey("WH-SMS-2")
    response = await stack.post(
        "sms", {"event_id": "smsc-3", "policy_number": p.number, "type": "reply", "text": "перезвоните"}
    )
    assert response.status_code == 200
    status = await stack.status(workflow_id)
    assert "sms_replied" in [e.type for e in status.events] and status.stage is not Stage.OPTED_OUT


async def test_email_opened_reaches_the_journey_once(stack: Stack) -> None:
    p, workflow_id = await stack.journey("WH-EMAIL-1")
    payload = {
        "event_id": "mail-1",
        "policy_number": p.number,
        "expires_on": str(p.expires_on),
        "type": "opened",
    }
    first = await stack.post("email", payload)
    assert first.json()["status"] == "accepted"
    events = [e.type for e in (await stack.status(workflow_id)).events]
    assert events.count("email_opened") == 1
    again = await stack.post("email", payload)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert [e.type for e in (await stack.status(workflow_id)).events] == events  # nothing changed


async def test_vk_read_by_journey_id(stack: Stack) -> None:
    _, workflow_id = await stack.journey("WH-VK-1")
    response = await stack.post("vk", {"event_id": "vk-1", "journey_id": workflow_id, "type": "read"})
    assert response.status_code == 200
    assert "vk_read" in [e.type for e in (await stack.status(workflow_id)).events]


async def test_robot_outcome_becomes_the_robot_signal(stack: Stack) -> None:
    p, workflow_id = await stack.journey("WH-ROBOT-1")
    response = await stack.post(
        "robot", {"event_id": "vox-1", "policy_number": p.number, "task_id": "call-7", "outcome": "agreed"}
    )
    assert response.json()["signal"] == "robot_outcome"
    status = await stack.status(workflow_id)
    assert [(e.type, e.detail) for e in status.events] == [("robot_outcome: agreed", "call-7")]


async def test_portal_payment_finishes_the_journey_and_later_callbacks_are_harmless(stack: Stack) -> None:
    p, workflow_id = await stack.journey("WH-PORTAL-1")
    draft = await stack.post(
        "portal", {"event_id": "ap-1", "policy_number": p.number, "type": "draft_created"}
    )
    assert draft.status_code == 200
    paid = await stack.post(
        "portal", {"event_id": "ap-2", "policy_number": p.number, "type": "payment_received"}
    )
    assert paid.json()["status"] == "accepted"
    result = await stack.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
    assert result.stage is Stage.PAID
    assert [e.type for e in result.events][:2] == ["draft_created", "payment_received"]
    late = await stack.post("portal", {"event_id": "ap-3", "policy_number": p.number, "type": "renewed"})
    assert late.status_code == 200 and late.json()["status"] == "journey_finished"


async def test_signatures_are_checked_per_source(stack: Stack) -> None:
    p, _ = await stack.journey("WH-AUTH-1")
    payload = {"event_id": "auth-1", "policy_number": p.number, "type": "opened"}
    wrong = await stack.post("email", payload, secret=SECRETS["sms"])  # another source's secret
    assert wrong.status_code == 401
    unsigned = await stack.http.post("/webhooks/email", json=payload)
    assert unsigned.status_code == 401
    bearer = await stack.http.post(
        "/webhooks/email", json=payload, headers={"Authorization": f"Bearer {SECRETS['email']}"}
    )
    assert bearer.status_code == 200


async def test_unknown_policy_or_message_is_a_clear_404(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = await stack.post("portal", {"event_id": "u-1", "policy_number": "NOPE-1", "type": "renewed"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "unknown policy 'NOPE-1'"
    assert "unknown journey" in caplog.text
    message = await stack.post(
        "sms", {"event_id": "u-2", "message_id": "renewal-X:d-5-sms:sms", "type": "delivered"}
    )
    assert message.status_code == 404 and "unknown message" in message.json()["detail"]
    no_journey = await stack.post(
        "vk", {"event_id": "u-3", "journey_id": "renewal-NONE-20270101", "type": "read"}
    )
    assert no_journey.status_code == 404
    retried = await stack.post(
        "vk", {"event_id": "u-3", "journey_id": "renewal-NONE-20270101", "type": "read"}
    )
    assert retried.status_code == 404  # not remembered as processed
    nameless = await stack.post("vk", {"event_id": "u-4", "type": "read"})
    assert nameless.status_code == 422


async def test_openapi_is_served(stack: Stack) -> None:
    schema = (await stack.http.get("/openapi.json")).json()
    assert {"/webhooks/sms", "/webhooks/email", "/webhooks/vk", "/webhooks/robot", "/webhooks/portal"} <= set(
        schema["paths"]
    )
    assert "/operators/tasks/{task_id}/outcome" in schema["paths"]

"""Webhooks end-to-end on the local dev server: each source's callback reaches a running journey as a
signal; signatures are checked; a repeated callback — also two copies at once — changes nothing; an
unknown policy, message or journey gets a 404 and nothing is stored, whatever the callback's type."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from activities.renewal import JourneyActivities
from renewals.channels.email import message_id_for
from renewals.channels.factory import recording_channels
from renewals.channels.smsc import smsc_message_id
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.intake.portfolio_store import upsert_policy
from renewals.journey_api import JourneyStatus, Stage
from renewals.models import Policy
from renewals.sendwindow import SendWindow
from renewals.temporal.journeys import journey_status, start_journey
from renewals.webhooks.app import create_app
from renewals.webhooks.auth import BEARER_SOURCES, sign
from renewals.webhooks.payloads import CALLBACKS
from tests.factories import policy
from tests.harness import local_dev_server
from worker import build_worker

QUEUE = "webhook-test"
SECRETS = {s: f"secret-{s}" for s in ("sms", "email", "vk", "robot", "portal", "operators")}


@dataclass
class Stack:
    client: Client
    db: Database
    http: httpx.AsyncClient

    async def journey(self, number: str, start: bool = True, **overrides: Any) -> tuple[Policy, str]:
        """A renewal-centre КАСКО policy ending in 40 days: its journey sleeps until −30, running."""
        p = policy(
            "KASKO",
            number=number,
            renewal_centre=True,
            expires_on=(date.today() + timedelta(days=40)).isoformat(),
            **overrides,
        )
        await upsert_policy(self.db, p)
        if not start:
            return p, ""
        handle = await start_journey(self.client, p, QUEUE, SendWindow())
        return p, handle.id

    async def post(
        self,
        source: str,
        payload: dict[str, Any],
        secret: str | None = None,
        signed: bool = True,
        http: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Signature"] = sign(secret or SECRETS[source], body)
        return await (http or self.http).post(f"/webhooks/{source}", content=body, headers=headers)

    async def status(self, workflow_id: str) -> JourneyStatus:
        return await journey_status(self.client, workflow_id)

    async def events(self, workflow_id: str) -> list[tuple[str, str | None]]:
        return [(e.type, e.detail) for e in (await self.status(workflow_id)).events]

    async def stored(self, source: str, event_id: str) -> int:
        async with self.db.session() as session:
            query = select(func.count()).where(
                WebhookEventRow.source == source, WebhookEventRow.event_id == event_id
            )
            return int((await session.execute(query)).scalar_one())


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = await local_dev_server()
    path: Path = tmp_path_factory.mktemp("webhooks")
    db = Database(f"sqlite+aiosqlite:///{path}/webhooks.db")
    await db.migrate()
    app = create_app(db, env.client, SECRETS)
    try:
        async with (
            build_worker(env.client, QUEUE, JourneyActivities(db, recording_channels(db))),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks") as http,
        ):
            yield Stack(env.client, db, http)
    finally:
        await db.dispose()
        await env.shutdown()


async def add_outbox(
    db: Database, workflow_id: str, touchpoint: str, channel: str, provider_message_id: str | None = None
) -> str:
    """A sent message in the outbox, as the `send` activity leaves it; returns our dedup key."""
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
                provider=channel,
                provider_message_id=provider_message_id,
                created_at=now,
                updated_at=now,
            )
        )
    return key


# Per source: a callback body (besides event_id and the journey's name) and the event it becomes.
SOURCE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "sms": ({"type": "reply", "text": "перезвоните"}, "sms_replied"),
    "email": ({"type": "opened"}, "email_opened"),
    "vk": ({"type": "read"}, "vk_read"),
    "robot": ({"task_id": "call-1", "outcome": "no_answer"}, "robot_outcome: no_answer"),
    "portal": ({"type": "quote_created"}, "quote_created"),
}


@pytest.mark.parametrize("source", list(SOURCE_CASES))
async def test_each_source_signed_once_into_a_running_journey(
    stack: Stack, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, event = SOURCE_CASES[source]
    p, workflow_id = await stack.journey(f"WH-E2E-{source}")
    payload = {"event_id": f"{source}-e2e-1", "policy_number": p.number, **body}

    unsigned = await stack.post(source, payload, signed=False)
    other_secret = await stack.post(
        source, payload, secret=SECRETS["portal" if source != "portal" else "sms"]
    )
    bad_signature = await stack.http.post(
        f"/webhooks/{source}", json=payload, headers={"X-Signature": "sha256=" + "0" * 64}
    )
    assert [r.status_code for r in (unsigned, other_secret, bad_signature)] == [401, 401, 401]
    assert await stack.stored(source, payload["event_id"]) == 0

    unknown = await stack.post(source, {**payload, "event_id": f"{source}-e2e-0", "policy_number": "NOPE-9"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "unknown policy 'NOPE-9'"
    assert f"{source} callback {source}-e2e-0 for an unknown journey" in caplog.text
    assert await stack.stored(source, f"{source}-e2e-0") == 0

    accepted = await stack.post(source, payload)
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted" and accepted.json()["journey_id"] == workflow_id
    events = await stack.events(workflow_id)
    assert [t for t, _ in events].count(event) == 1

    again = await stack.post(source, payload)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert await stack.events(workflow_id) == events  # the journey got the signal once
    assert await stack.stored(source, payload["event_id"]) == 1
    assert (await stack.status(workflow_id)).stage not in (Stage.PAID, Stage.RENEWED, Stage.OPTED_OUT)


async def test_portal_events_reach_running_journeys(stack: Stack) -> None:
    p, workflow_id = await stack.journey("WH-PORTAL-1")
    for n, kind in enumerate(("draft_created", "quote_created"), start=1):
        response = await stack.post(
            "portal", {"event_id": f"ap-{n}", "policy_number": p.number, "type": kind}
        )
        assert response.json()["status"] == "accepted"
    assert (await stack.status(workflow_id)).stage is not Stage.PAID  # a draft or quote is no renewal
    paid = await stack.post(
        "portal", {"event_id": "ap-3", "policy_number": p.number, "type": "payment_received"}
    )
    assert paid.json()["status"] == "accepted"
    result = await stack.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
    assert result.stage is Stage.PAID
    assert [e.type for e in result.events][:3] == ["draft_created", "quote_created", "payment_received"]
    late = await stack.post("portal", {"event_id": "ap-4", "policy_number": p.number, "type": "renewed"})
    assert late.status_code == 200 and late.json()["status"] == "journey_finished"
    assert await stack.stored("portal", "ap-4") == 1  # stored, so the portal stops retrying

    other, renewed_id = await stack.journey("WH-PORTAL-2")
    renewed = await stack.post(
        "portal", {"event_id": "ap-5", "policy_number": other.number, "type": "renewed"}
    )
    assert renewed.json() == {"status": "accepted", "journey_id": renewed_id, "signal": "event"}
    final = await stack.client.get_workflow_handle(renewed_id, result_type=JourneyStatus).result()
    assert final.stage is Stage.RENEWED


async def test_delivery_reports_become_events_matched_by_the_providers_message_id(stack: Stack) -> None:
    """The adapters hand providers a hash of our key (SMSC id, e-mail Message-ID, VK's message id):
    a callback carrying that id finds its message through `outbox.provider_message_id`."""
    _, workflow_id = await stack.journey("WH-DELIVERY-1")
    smsc_id = str(smsc_message_id(f"{workflow_id}:d-30-sms:sms"))
    sms_key = await add_outbox(stack.db, workflow_id, "d-30-sms", "sms", provider_message_id=smsc_id)
    email_key = f"{workflow_id}:d-30-email:email"
    message_id = message_id_for(email_key, "insurer.example")
    await add_outbox(stack.db, workflow_id, "d-30-email", "email", provider_message_id=message_id)
    await add_outbox(stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="5501")

    callbacks = [
        ("sms", {"event_id": "d-1", "message_id": smsc_id, "type": "delivered"}),
        ("sms", {"event_id": "d-2", "message_id": sms_key, "type": "undelivered"}),  # our key works too
        ("email", {"event_id": "d-3", "message_id": message_id.strip("<>"), "type": "bounced"}),
        ("vk", {"event_id": "d-4", "message_id": "5501", "type": "delivered"}),
    ]
    for source, payload in callbacks:
        response = await stack.post(source, payload)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "accepted", "journey_id": workflow_id, "signal": "event"}
    assert await stack.events(workflow_id) == [
        ("message_delivered", "sms:d-30-sms"),
        ("message_undelivered", "sms:d-30-sms"),
        ("message_undelivered", "email:d-30-email"),
        ("message_delivered", "vk:d-30-vk"),
    ]
    async with stack.db.session() as session:
        facts = (
            await session.execute(
                select(WebhookEventRow.event_id, WebhookEventRow.kind, WebhookEventRow.touchpoint).where(
                    WebhookEventRow.journey_id == workflow_id
                )
            )
        ).all()
    assert sorted(facts) == [
        ("d-1", "delivered", "d-30-sms"),
        ("d-2", "undelivered", "d-30-sms"),
        ("d-3", "bounced", "d-30-email"),
        ("d-4", "delivered", "d-30-vk"),
    ]
    # An SMSC id is a number: the same number from another channel's provider is not our SMS.
    stray = await stack.post("vk", {"event_id": "d-5", "message_id": smsc_id, "type": "delivered"})
    assert stray.status_code == 404 and "unknown message" in stray.json()["detail"]


async def test_sms_stop_reply_opts_out(stack: Stack) -> None:
    _, workflow_id = await stack.journey("WH-SMS-1")
    message_id = await add_outbox(stack.db, workflow_id, "d-30-sms", "sms")
    stop = await stack.post(
        "sms", {"event_id": "smsc-2", "message_id": message_id, "type": "reply", "text": " stop "}
    )
    assert stop.json()["signal"] == "event"
    result = await stack.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
    assert result.stage is Stage.OPTED_OUT
    assert ("opt_out", "sms") in [(e.type, e.detail) for e in result.events]
    async with stack.db.session() as session:
        facts = (await session.execute(select(WebhookEventRow.kind, WebhookEventRow.touchpoint))).all()
    assert ("opt_out", "d-30-sms") in facts


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


async def test_delivery_reports_for_unknown_journeys_are_404_and_not_stored(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Even a callback that only reports delivery must name a journey Temporal knows."""
    cases = [
        ("sms", {"event_id": "x-1", "policy_number": "NOPE-1", "type": "delivered"}, "unknown policy"),
        ("sms", {"event_id": "x-2", "policy_number": "NOPE-1", "type": "undelivered"}, "unknown policy"),
        (
            "email",
            {"event_id": "x-3", "journey_id": "renewal-NONE-20270101", "type": "bounced"},
            "no journey",
        ),
        ("email", {"event_id": "x-4", "message_id": "<nope@x>", "type": "delivered"}, "unknown message"),
        (
            "vk",
            {"event_id": "x-5", "message_id": "renewal-X:d-30-vk:vk", "type": "delivered"},
            "unknown message",
        ),
    ]
    for source, payload, reason in cases:
        response = await stack.post(source, payload)
        assert response.status_code == 404 and reason in response.json()["detail"], (payload, response.text)
        assert await stack.stored(source, payload["event_id"]) == 0
        assert f"{source} callback {payload['event_id']} for an unknown journey" in caplog.text

    # A known policy whose journey has not started yet: 404 too, and the retry after the start works.
    p, _ = await stack.journey("WH-LATE-1", start=False)
    early = {"event_id": "x-6", "policy_number": p.number, "type": "delivered"}
    assert (await stack.post("sms", early)).status_code == 404
    assert await stack.stored("sms", "x-6") == 0
    handle = await start_journey(stack.client, p, QUEUE, SendWindow())
    retried = await stack.post("sms", early)
    assert retried.json() == {"status": "accepted", "journey_id": handle.id, "signal": "event"}

    nameless = await stack.post("vk", {"event_id": "x-7", "type": "read"})
    assert nameless.status_code == 422


async def test_concurrent_copies_of_a_callback_signal_once(stack: Stack) -> None:
    p, workflow_id = await stack.journey("WH-RACE-1")
    payload = {"event_id": "race-1", "policy_number": p.number, "type": "opened"}
    responses = await asyncio.gather(*(stack.post("email", payload) for _ in range(4)))
    assert sorted(r.json()["status"] for r in responses) == [
        "accepted",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert [t for t, _ in await stack.events(workflow_id)].count("email_opened") == 1
    assert await stack.stored("email", "race-1") == 1


async def test_bearer_secret_for_providers_that_cannot_sign(stack: Stack) -> None:
    p, _ = await stack.journey("WH-AUTH-1")
    payload = {"event_id": "auth-1", "policy_number": p.number, "type": "opened"}
    wrong = await stack.http.post(
        "/webhooks/email", json=payload, headers={"Authorization": f"Bearer {SECRETS['sms']}"}
    )
    assert wrong.status_code == 401
    bearer = await stack.http.post(
        "/webhooks/email", json=payload, headers={"Authorization": f"Bearer {SECRETS['email']}"}
    )
    assert bearer.status_code == 200


async def test_openapi_is_served(stack: Stack) -> None:
    schema = (await stack.http.get("/openapi.json")).json()
    assert {"/webhooks/sms", "/webhooks/email", "/webhooks/vk", "/webhooks/robot", "/webhooks/portal"} <= set(
        schema["paths"]
    )
    assert "/operators/tasks/{task_id}/outcome" in schema["paths"]


async def test_malformed_auth_headers_are_401_and_conventions_hold(stack: Stack) -> None:
    p, _ = await stack.journey("WH-AUTH-2")
    payload = {"event_id": "auth-2", "policy_number": p.number, "type": "opened"}
    body = json.dumps(payload).encode()
    good = sign(SECRETS["email"], body).removeprefix("sha256=")
    malformed: list[dict[str, Any]] = [
        {"X-Signature": "sha256=é".encode()},
        {"X-Signature": ("sha256=" + good[:-1] + "é").encode()},
        {"X-Signature": b"sha256=\xff\xfe"},
        {"Authorization": "Bearer секрет".encode()},
        {"Authorization": b"Bearer \xff"},
        {"X-Signature": ""},
        {"X-Signature": "sha256="},
        {"X-Signature": good},
        {"X-Signature": "sha1=" + good},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {SECRETS['email']}"},
        {"Authorization": ""},
    ]
    for headers in malformed:
        response = await stack.http.post("/webhooks/email", content=body, headers=headers)
        assert response.status_code == 401, headers
    for headers in (
        {"X-Signature": "SHA256=" + good.upper()},
        {"Authorization": f"bearer {SECRETS['email']}"},
    ):
        response = await stack.http.post("/webhooks/email", content=body, headers=headers)
        assert response.status_code == 200, (headers, response.text)


async def test_bearer_only_for_sources_that_cannot_sign(stack: Stack) -> None:
    """A bearer token is the secret itself in every request: refused for the sources that sign."""
    p, _ = await stack.journey("WH-AUTH-3")
    for source in sorted(set(CALLBACKS) - BEARER_SOURCES):
        body, _ = SOURCE_CASES[source]
        payload = {"event_id": f"auth-3-{source}", "policy_number": p.number, **body}
        bearer = await stack.http.post(
            f"/webhooks/{source}", json=payload, headers={"Authorization": f"Bearer {SECRETS[source]}"}
        )
        assert bearer.status_code == 401, source
    assert BEARER_SOURCES & set(CALLBACKS) == {"email"}


async def test_a_callback_reaches_only_a_renewal_journey(stack: Stack) -> None:
    """A signed callback naming another workflow (an SLA application, anything) is a 404, not a signal."""
    other = await stack.client.start_workflow("NotARenewal", id="wh-other-1", task_queue="nobody-polls")
    try:
        for source, (body, _) in SOURCE_CASES.items():
            payload = {"event_id": f"scope-{source}", "journey_id": other.id, **body}
            response = await stack.post(source, payload)
            assert response.status_code == 404 and "no journey" in response.json()["detail"], source
            assert await stack.stored(source, payload["event_id"]) == 0
    finally:
        await other.terminate()


async def test_ids_are_validated_and_never_echoed_whole(stack: Stack) -> None:
    p, _ = await stack.journey("WH-IDS-1")
    for event_id in ("", "   ", "a\x00b", "a\nb", "a\u200bb", "x" * 201):
        payload = {"event_id": event_id, "policy_number": p.number, "type": "opened"}
        response = await stack.post("email", payload)
        assert response.status_code == 422, repr(event_id)
        assert event_id not in response.text or len(event_id) < 2
    for field, value in (("task_id", " "), ("task_id", "t\x1b[31m"), ("task_id", "t" * 201)):
        payload = {"event_id": "ids-robot", "policy_number": p.number, "outcome": "busy", field: value}
        assert (await stack.post("robot", payload)).status_code == 422, repr(value)
    for field in ("message_id", "journey_id", "policy_number"):
        response = await stack.post("email", {"event_id": "ids-2", field: "\t", "type": "opened"})
        assert response.status_code == 422, field

    long_number = "N" * 64  # as long as a stored policy number may be
    unknown = await stack.post("email", {"event_id": "ids-3", "policy_number": long_number, "type": "opened"})
    assert unknown.status_code == 404 and long_number not in unknown.text
    assert unknown.json()["detail"].startswith("unknown policy 'NNN")
    too_long = await stack.post("email", {"event_id": "ids-4", "message_id": "m" * 5000, "type": "opened"})
    assert too_long.status_code == 422 and len(too_long.text) < 500


async def test_a_delivery_report_for_an_sla_notice_is_acknowledged_and_ignored(stack: Stack) -> None:
    """Partner-SLA notices (a staff e-mail, the urgent line's SMS) go through the same outbox: their
    reports name no renewal journey, and a 404 would only make the provider retry them for ever."""
    key = await add_outbox(stack.db, "sla-realtor-a-77", "sla-response-warning", "sms", "880077")
    response = await stack.post("sms", {"event_id": "sla-d-1", "message_id": "880077", "type": "delivered"})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ignored", "journey_id": "sla-realtor-a-77", "signal": None}
    assert await stack.stored("sms", "sla-d-1") == 0 and key.startswith("sla-realtor-a-77")

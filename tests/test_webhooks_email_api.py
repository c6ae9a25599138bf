"""Unisender Go's status webhook, `/webhooks/email-api`, in the provider's documented payloads (both
shapes, signed with its MD5 `auth`): an open reaches a running journey as `email_opened`, a delivery
and a hard bounce as delivery reports, each once however often the provider repeats it; an
unsubscribe or a complaint silences the address for e-mail only. The whole way round (adapter → fake
API → its webhook → the journey) is `tests/test_email_api_journey.py`."""

from __future__ import annotations

import hashlib
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
from renewals.channels.email_http import METADATA_KEY, email_api_id
from renewals.channels.factory import recording_channels
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.delivery import OptOuts
from renewals.intake.portfolio_store import upsert_policy
from renewals.journey_api import Stage
from renewals.sendwindow import SendWindow
from renewals.temporal.journeys import journey_status, start_journey
from renewals.webhooks.app import create_app
from renewals.webhooks.email_api import ROUTE, authentic
from tests.factories import policy
from tests.harness import local_dev_server
from worker import build_worker

QUEUE = "email-api-webhook-test"
API_KEY = "unisender-project-key"
SECRETS = {"email": "secret-email", "email_api": API_KEY}


def status_event(
    message_id: str | None, status: str, email: str = "client@example.org", **extra: Any
) -> dict[str, Any]:
    """One `transactional_email_status` event's data, as the provider's docs show it."""
    data: dict[str, Any] = {
        "job_id": "1a3Q2V-0000OZ-S0",
        "metadata": {METADATA_KEY: message_id} if message_id else {},
        "email": email,
        "status": status,
        "event_time": "2027-03-21 09:00:05",
        **extra,
    }
    return data


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    """The default shape: one user, its events."""
    return {
        "events_by_user": [
            {
                "user_id": 456,
                "project_id": "6432890213745872",
                "project_name": "Renewals",
                "events": [{"event_name": "transactional_email_status", "event_data": e} for e in events],
            }
        ]
    }


def signed_body(
    payload: dict[str, Any], key: str = API_KEY, escape_slashes: bool = False, **dumps: Any
) -> bytes:
    """Serialised as the provider might (any options; PHP's `\\/` for `/`), `auth` the MD5 of those
    very bytes with the key in its place."""
    placeholder = "0" * 32
    text = json.dumps({"auth": placeholder, **payload}, **dumps)
    if escape_slashes:
        text = text.replace("/", "\\/")
    auth = hashlib.md5(text.replace(placeholder, key).encode()).hexdigest()
    return text.replace(placeholder, auth).encode()


@dataclass
class Stack:
    client: Client
    db: Database
    http: httpx.AsyncClient

    async def journey(
        self, number: str, email: str = "client@example.org", sent: bool = True
    ) -> tuple[str, str]:
        """A renewal-centre КАСКО journey ending in 40 days (asleep until −30) and its −30 e-mail in
        the outbox as the adapter leaves it; returns (workflow id, our message id at the provider)."""
        p = policy(
            "KASKO",
            number=number,
            renewal_centre=True,
            expires_on=(date.today() + timedelta(days=40)).isoformat(),
            client={"email": email},
        )
        await upsert_policy(self.db, p)
        handle = await start_journey(self.client, p, QUEUE, SendWindow())
        message_id = email_api_id(f"{handle.id}:d-30-email:email")
        if sent:
            await self.sent(handle.id)
        return handle.id, message_id

    async def sent(self, workflow_id: str) -> None:
        """The journey's −30 e-mail in the outbox as the send activity leaves it after the API's 200."""
        key = f"{workflow_id}:d-30-email:email"
        now = datetime.now(UTC)
        async with self.db.session() as session, session.begin():
            session.add(
                OutboxRow(
                    dedup_key=key,
                    journey_id=workflow_id,
                    touchpoint="d-30-email",
                    channel="email",
                    recipient="x",
                    template="centre_email_30",
                    status="sent",
                    provider="unisender",
                    provider_message_id=email_api_id(key),
                    created_at=now,
                    updated_at=now,
                )
            )

    async def post(self, body: bytes) -> httpx.Response:
        return await self.http.post(ROUTE, content=body, headers={"Content-Type": "application/json"})

    async def events(self, workflow_id: str) -> list[tuple[str, str | None]]:
        return [(e.type, e.detail) for e in (await journey_status(self.client, workflow_id)).events]

    async def receipts(self) -> int:
        async with self.db.session() as session:
            return int(
                (await session.execute(select(func.count()).select_from(WebhookEventRow))).scalar_one()
            )


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = await local_dev_server()
    path: Path = tmp_path_factory.mktemp("email-api")
    db = Database(f"sqlite+aiosqlite:///{path}/webhooks.db")
    await db.migrate()
    try:
        async with (
            build_worker(env.client, QUEUE, JourneyActivities(db, recording_channels(db))),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(db, env.client, SECRETS)), base_url="http://wh"
            ) as http,
        ):
            yield Stack(env.client, db, http)
    finally:
        await db.dispose()
        await env.shutdown()


def test_the_signature_is_the_providers_md5_however_the_json_is_spelt() -> None:
    payload = batch(status_event("m", "opened", url="https://x.example/a/b"))
    for options in (
        {},
        {"separators": (",", ":")},
        {"ensure_ascii": False},
        {"indent": 2},
        {"sort_keys": True},
    ):
        body = signed_body(payload, **options)
        assert authentic(body, API_KEY), options
        assert not authentic(body, "another-key")
        assert not authentic(body.replace(b"opened", b"clicked"), API_KEY)  # tampered after signing
    assert not authentic(signed_body(payload), None) and not authentic(b'{"events_by_user": []}', API_KEY)
    # The provider escapes slashes (`\\/`) and signs those bytes: a check that re-serialised the
    # parsed JSON would refuse every such callback; the raw bytes' check takes it.
    escaped = signed_body(payload, escape_slashes=True, separators=(",", ":"))
    assert b"https:\\/\\/x.example" in escaped and authentic(escaped, API_KEY)


async def test_an_open_reaches_the_journey_once_as_email_opened(stack: Stack) -> None:
    workflow_id, message_id = await stack.journey("EA-OPEN-1")
    body = signed_body(
        batch(
            status_event(message_id, "sent"),
            status_event(message_id, "delivered", delivery_info={"delivery_status": "success"}),
            status_event(message_id, "opened", delivery_info={"user_agent": "Mozilla/5.0", "ip": "10.0.0.1"}),
            status_event(message_id, "clicked", url="https://unsubscribe.example"),  # implies an open
        )
    )
    response = await stack.post(body)
    assert response.status_code == 200, response.text
    assert [(o["status"], o["journey_id"]) for o in response.json()["outcomes"]] == [
        ("ignored", None),
        ("accepted", workflow_id),
        ("accepted", workflow_id),
        ("duplicate", workflow_id),  # the click is the same open
    ]
    assert await stack.events(workflow_id) == [
        ("message_delivered", "email:d-30-email"),
        ("email_opened", "email"),
    ]
    # The provider repeats a batch it thinks we did not take: nothing changes.
    again = await stack.post(body)
    assert [o["status"] for o in again.json()["outcomes"]] == [
        "ignored",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert await stack.events(workflow_id) == [
        ("message_delivered", "email:d-30-email"),
        ("email_opened", "email"),
    ]
    # …as does a second open on another day, in the "single event" shape
    single = {
        "event_name": "transactional_email_status",
        "user_id": 456,
        **status_event(message_id, "opened"),
    }
    later = await stack.post(signed_body({**single, "event_time": "2027-03-25 18:00:00"}))
    assert later.status_code == 200 and later.json()["outcomes"][0]["status"] == "duplicate"
    assert [t for t, _ in await stack.events(workflow_id)].count("email_opened") == 1


async def test_the_single_event_shape_reaches_the_journey(stack: Stack) -> None:
    workflow_id, message_id = await stack.journey("EA-SINGLE-1")
    single = {
        "event_name": "transactional_email_status",
        "user_id": 456,
        **status_event(message_id, "opened"),
    }
    response = await stack.post(signed_body(single, separators=(",", ":"), ensure_ascii=False))
    assert response.json() == {
        "outcomes": [{"status": "accepted", "event": f"opened {message_id[:23]}…", "journey_id": workflow_id}]
    }
    assert await stack.events(workflow_id) == [("email_opened", "email")]


async def test_a_hard_bounce_is_undelivered_and_the_address_is_not_tried_again(stack: Stack) -> None:
    address = "gone@example.org"
    workflow_id, message_id = await stack.journey("EA-BOUNCE-1", email=address)
    info = {
        "delivery_status": "err_user_unknown",
        "destination_response": f"550 5.1.1 <{address}>: no such user",
    }
    response = await stack.post(
        signed_body(batch(status_event(message_id, "hard_bounced", address, delivery_info=info)))
    )
    assert [o["status"] for o in response.json()["outcomes"]] == ["accepted", "opted_out"]
    assert await stack.events(workflow_id) == [("message_undelivered", "email:d-30-email")]
    assert await OptOuts(stack.db).reason(address) == "email_hard_bounced"
    soft = await stack.post(signed_body(batch(status_event(message_id, "soft_bounced", address))))
    assert soft.json()["outcomes"][0]["status"] == "ignored"  # the provider retries it itself


@pytest.mark.parametrize(
    ("status", "reason"), [("unsubscribed", "email_unsubscribed"), ("spam", "email_spam_complaint")]
)
async def test_an_unsubscribe_silences_the_address_for_email_only(
    stack: Stack, status: str, reason: str
) -> None:
    address = f"{status}@example.org"
    workflow_id, message_id = await stack.journey(f"EA-{status.upper()}-1", email=address)
    event = status_event(message_id, status, address, comment="не присылайте писем")
    response = await stack.post(signed_body(batch(event)))
    assert response.json()["outcomes"] == [
        {"status": "opted_out", "event": f"{status} {message_id[:23]}…", "journey_id": workflow_id}
    ]
    assert await OptOuts(stack.db).reason(address) == reason
    status_now = await journey_status(stack.client, workflow_id)
    assert status_now.stage is Stage.SCHEDULED and status_now.events == []  # SMS, VK and calls go on


async def test_bad_auth_is_refused_before_anything_is_read(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    workflow_id, message_id = await stack.journey("EA-AUTH-1")
    before = await stack.receipts()
    good = signed_body(batch(status_event(message_id, "opened")))
    refused = [
        await stack.post(signed_body(batch(status_event(message_id, "opened")), key="someone-else")),
        await stack.post(good.replace(b"opened", b"clicked")),
        await stack.post(json.dumps(batch(status_event(message_id, "opened"))).encode()),  # no auth
        await stack.post(b"not json at all"),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert "rejected e-mail API callback" in caplog.text
    assert await stack.receipts() == before and await stack.events(workflow_id) == []
    # authentic but not the provider's shape: 422, without the body echoed
    wrong_shape = await stack.post(
        signed_body(
            {
                "events_by_user": [
                    {
                        "events": [
                            {
                                "event_name": "transactional_email_status",
                                "event_data": {"email": "leak@example.org"},
                            }
                        ]
                    }
                ]
            }
        )
    )
    assert wrong_shape.status_code == 422 and "leak@example.org" not in wrong_shape.text
    too_big = await stack.http.post(ROUTE, content=b"x" * (1024 * 1024 + 1))
    assert too_big.status_code == 413
    assert (await stack.http.get(ROUTE)).status_code == 200  # the provider's check when the URL is set


async def test_a_callback_before_its_message_is_known_is_retried(stack: Stack) -> None:
    """The webhook outran the send's commit: 404, and the provider's retry is processed in order."""
    early_id, early = await stack.journey("EA-EARLY-1", sent=False)
    other_id, other = await stack.journey("EA-EARLY-2")
    body = signed_body(
        batch(status_event(early, "delivered"), status_event(other, "opened"), status_event(early, "opened"))
    )
    first = await stack.post(body)
    assert first.status_code == 404 and "unknown message" in first.json()["detail"]
    assert await stack.events(early_id) == []  # its open waits behind its delivery
    assert await stack.events(other_id) == [("email_opened", "email")]  # another message's was done
    await stack.sent(early_id)
    retried = await stack.post(body)
    assert [o["status"] for o in retried.json()["outcomes"]] == ["accepted", "duplicate", "accepted"]
    assert await stack.events(early_id) == [
        ("message_delivered", "email:d-30-email"),
        ("email_opened", "email"),
    ]
    # Not one of ours: no id, or an id our adapter never makes (another sender on the account).
    foreign = await stack.post(
        signed_body(batch(*(status_event(i, "delivered") for i in (None, "m" * 5000, "a\u2028b", other_id))))
    )
    assert foreign.status_code == 200
    assert [o["status"] for o in foreign.json()["outcomes"]] == ["ignored"] * 4

"""The providers' own callback formats (renewals/webhooks/native) end to end on the local dev server:
SMSC's handler form, VK Callback API events and the robot vendor's result, each as the provider's
documentation shows it, through the real webhook app into the real `WebhookService` and a running
renewal journey. Authentication as each provider allows, duplicates deduplicated, unknown messages
answered so the provider stops (and logged), malformed input 4xx — and the fake gateway emitting the
same formats (`callback_format="native"`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select, update
from temporalio.client import Client

from activities.renewal import JourneyActivities
from fake_providers.app import create_app as create_gateway_app
from fake_providers.config import GatewayConfig
from fake_providers.gateway import Gateway
from renewals.channels.factory import recording_channels
from renewals.channels.smsc import smsc_message_id
from renewals.channels.vk import vk_random_id
from renewals.db.database import Database
from renewals.db.tables import OptOutRow, OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.delivery import OptOuts
from renewals.intake.portfolio_store import upsert_policy
from renewals.journey_api import JourneyStatus, RobotOutcome, Stage
from renewals.sendwindow import SendWindow
from renewals.temporal.journeys import journey_status, start_journey
from renewals.webhooks.app import MAX_BODY, create_app
from renewals.webhooks.auth import sign
from renewals.webhooks.native.config import NativeCallbacks
from renewals.webhooks.native.routes import native_config
from tests.factories import policy
from tests.harness import local_dev_server
from tests.test_webhooks_props import FakeClient
from worker import build_worker

QUEUE = "native-callbacks-test"
SECRETS = {s: f"secret-{s}" for s in ("sms", "email", "vk", "robot", "portal", "operators")}
SMSC_KEY = "smsc-handler-key"
VK_GROUP = 218_000_001
VK_SECRET = "vk-callback-secret"
VK_CONFIRMATION = "a1b2c3d4"
ROBOT_SECRET = "robot-vendor-secret"
CONFIG = NativeCallbacks(
    smsc_key=SecretStr(SMSC_KEY),
    vk_group_id=VK_GROUP,
    vk_secret=SecretStr(VK_SECRET),
    vk_confirmation=VK_CONFIRMATION,
    robot_secret=SecretStr(ROBOT_SECRET),
)
PHONE = "+79161234567"  # the factories' client
VK_USER = "1234567"


def smsc_md5(*values: str, key: str = SMSC_KEY, charset: str = "utf-8") -> str:
    """SMSC's hash as its handler page describes it, written out here independently of the code."""
    return hashlib.md5(":".join([*values, key]).encode(charset)).hexdigest()


@dataclass
class Stack:
    client: Client
    db: Database
    http: httpx.AsyncClient
    app: Any

    async def journey(self, number: str) -> str:
        """A renewal-centre КАСКО policy ending in 40 days: its journey sleeps until −30, running."""
        p = policy(
            "KASKO",
            number=number,
            renewal_centre=True,
            expires_on=(date.today() + timedelta(days=40)).isoformat(),
        )
        await upsert_policy(self.db, p)
        return (await start_journey(self.client, p, QUEUE, SendWindow())).id

    async def status(self, workflow_id: str) -> JourneyStatus:
        return await journey_status(self.client, workflow_id)

    async def events(self, workflow_id: str) -> list[tuple[str, str | None]]:
        return [(e.type, e.detail) for e in (await self.status(workflow_id)).events]

    async def stored(self, source: str, event_id: str | None = None) -> int:
        query = select(func.count()).where(WebhookEventRow.source == source)
        if event_id is not None:
            query = query.where(WebhookEventRow.event_id == event_id)
        async with self.db.session() as session:
            return int((await session.execute(query)).scalar_one())

    async def smsc(
        self, form: dict[str, str], query: str = "?charset=utf-8", charset: str = "utf-8"
    ) -> httpx.Response:
        body = urlencode(form, encoding=charset).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return await self.http.post(f"/webhooks/native/smsc{query}", content=body, headers=headers)

    async def vk(self, event: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/webhooks/native/vk", content=json.dumps(event).encode())

    async def robot(self, payload: dict[str, Any], secret: str = ROBOT_SECRET) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.http.post(
            "/webhooks/native/robot", content=body, headers={"X-Signature": sign(secret, body)}
        )


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = await local_dev_server()
    path: Path = tmp_path_factory.mktemp("native")
    db = Database(f"sqlite+aiosqlite:///{path}/native.db")
    await db.migrate()
    app = create_app(db, env.client, SECRETS)
    app.dependency_overrides[native_config] = lambda: CONFIG
    try:
        async with (
            build_worker(env.client, QUEUE, JourneyActivities(db, recording_channels(db))),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks") as http,
        ):
            yield Stack(env.client, db, http, app)
    finally:
        await db.dispose()
        await env.shutdown()


async def add_outbox(
    db: Database,
    workflow_id: str,
    touchpoint: str,
    channel: str,
    provider_message_id: str | None = None,
    recipient: str = "x",
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
                recipient=recipient,
                template="centre_email_30",
                status="sent",
                provider=channel,
                provider_message_id=provider_message_id,
                created_at=now,
                updated_at=now,
            )
        )
    return key


async def opt_out_count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(OptOutRow))).scalar_one())


# ---- SMSC --------------------------------------------------------------------------------------


def smsc_status(message_id: str, status: str, err: str = "0", phone: str = "79161234567") -> dict[str, str]:
    """The form SMSC's handler callback posts for a status (its documented parameters), signed."""
    return {
        "id": message_id,
        "phone": phone,
        "status": status,
        "time": "02.12.2026 10:15:00",
        "ts": "1796206500",
        "err": err,
        "cnt": "1",
        "md5": smsc_md5(message_id, phone, status),
    }


async def test_smsc_statuses_become_delivery_events_once(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-SMSC-1")
    smsc_id = str(smsc_message_id(f"{workflow_id}:d-30-sms:sms"))
    await add_outbox(stack.db, workflow_id, "d-30-sms", "sms", provider_message_id=smsc_id, recipient=PHONE)

    delivered = await stack.smsc(smsc_status(smsc_id, "1"))
    assert delivered.status_code == 200 and delivered.text == "OK"
    again = await stack.smsc(smsc_status(smsc_id, "1"))  # SMSC repeats a report it thinks was lost
    assert again.status_code == 200 and again.text == "OK"
    passed_on = await stack.smsc(smsc_status(smsc_id, "0"))  # handed to the operator: nothing to tell
    assert passed_on.status_code == 200
    undelivered = await stack.smsc(smsc_status(smsc_id, "20", err="1"))
    assert undelivered.status_code == 200

    assert await stack.events(workflow_id) == [
        ("message_delivered", "sms:d-30-sms"),
        ("message_undelivered", "sms:d-30-sms"),
    ]
    assert await stack.stored("sms", f"smsc-{smsc_id}-1") == 1
    assert await stack.stored("sms", f"smsc-{smsc_id}-0") == 0
    assert (await stack.status(workflow_id)).stage is not Stage.OPTED_OUT


async def test_reports_overtaking_the_send_still_find_their_message(stack: Stack) -> None:
    """SMSC's status and VK's `message_reply` can arrive before the worker has recorded the provider's
    answer: the row is still pending, without the provider's message id. Both ids derive from our
    key (SMSC `id`, VK `random_id`), so the report finds the row anyway."""
    workflow_id = await stack.journey("NC-OVERTAKE")
    sms_key = await add_outbox(stack.db, workflow_id, "d-30-sms", "sms", recipient="+79035550101")
    vk_key = await add_outbox(stack.db, workflow_id, "d-30-vk", "vk", recipient="5550101")
    async with stack.db.session() as session, session.begin():
        await session.execute(
            update(OutboxRow).where(OutboxRow.dedup_key.in_((sms_key, vk_key))).values(status="pending")
        )
    smsc_id = str(smsc_message_id(sms_key))
    assert (await stack.smsc(smsc_status(smsc_id, "1", phone="79035550101"))).status_code == 200
    reply = {"id": 990777, "peer_id": 5550101, "from_id": -VK_GROUP, "random_id": vk_random_id(vk_key)}
    assert (await stack.vk(vk_event("message_reply", reply, "overtake-1"))).text == "ok"
    assert await stack.events(workflow_id) == [
        ("message_delivered", "sms:d-30-sms"),
        ("message_delivered", "vk:d-30-vk"),
    ]


@pytest.mark.parametrize(
    ("status", "event"),
    [
        ("2", "message_delivered"),
        ("3", "message_undelivered"),
        ("22", "message_undelivered"),
        ("4", "message_delivered"),
    ],
)
async def test_smsc_status_codes(stack: Stack, status: str, event: str) -> None:
    workflow_id = await stack.journey(f"NC-SMSC-CODE-{status}")
    smsc_id = str(smsc_message_id(f"{workflow_id}:d-45-sms:sms"))
    await add_outbox(stack.db, workflow_id, "d-45-sms", "sms", provider_message_id=smsc_id, recipient=PHONE)
    assert (await stack.smsc(smsc_status(smsc_id, status))).status_code == 200
    assert await stack.events(workflow_id) == [(event, "sms:d-45-sms")]


async def test_smsc_authenticates_by_its_hash(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-SMSC-AUTH")
    smsc_id = str(smsc_message_id(f"{workflow_id}:d-30-sms:sms"))
    await add_outbox(stack.db, workflow_id, "d-30-sms", "sms", provider_message_id=smsc_id)
    good = smsc_status(smsc_id, "1")
    unsigned = {k: v for k, v in good.items() if k != "md5"}
    forged = [
        unsigned,
        {**good, "md5": smsc_md5(smsc_id, "79161234567", "1", key="another-key")},
        {**good, "status": "20"},  # the hash covers the status: a changed status is not SMSC's
        {**good, "md5": "0" * 32},
        {**unsigned, "sha1": hashlib.sha1(f"{smsc_id}:79161234567:1:{SMSC_KEY}".encode()).hexdigest()},
    ]
    for form in forged:
        response = await stack.smsc(form)
        assert response.status_code == 401, form
    # The key itself in the URL (as configured at SMSC) is no hash of the report
    in_url = await stack.smsc(unsigned, query=f"?charset=utf-8&md5={SMSC_KEY}")
    assert in_url.status_code == 401
    assert await stack.events(workflow_id) == []
    assert (await stack.smsc(good)).status_code == 200
    upper = await stack.smsc({**smsc_status(smsc_id, "20"), "md5": smsc_status(smsc_id, "20")["md5"].upper()})
    assert upper.status_code == 200  # hex in either case
    assert [t for t, _ in await stack.events(workflow_id)] == ["message_delivered", "message_undelivered"]


async def test_smsc_unknown_message_is_acknowledged_and_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    response = await stack.smsc(smsc_status("99999", "1"))
    assert response.status_code == 200 and response.text == "OK"  # SMSC stops; we do not pretend
    assert "smsc callback smsc-99999-1 for an unknown journey" in caplog.text
    assert await stack.stored("sms", "smsc-99999-1") == 0


async def test_smsc_malformed_input_is_4xx(stack: Stack) -> None:
    no_status = {"id": "12", "phone": "79161234567", "md5": smsc_md5("12", "79161234567", "")}
    assert (await stack.smsc(no_status)).status_code == 400
    not_numeric = {"id": "x1", "phone": "7916", "status": "1", "md5": smsc_md5("x1", "7916", "1")}
    assert (await stack.smsc(not_numeric)).status_code == 400
    binary = await stack.http.post("/webhooks/native/smsc", content=b"\xff\xfe\x00id")
    assert binary.status_code == 400
    not_a_form = await stack.http.post("/webhooks/native/smsc?charset=utf-8", content=b"id")
    assert not_a_form.status_code == 400
    charset = await stack.smsc(smsc_status("12", "1"), query="?charset=latin-9")
    assert charset.status_code == 400
    huge = await stack.http.post("/webhooks/native/smsc", content=b"id=1&" + b"x" * MAX_BODY)
    assert huge.status_code == 413


async def test_smsc_incoming_stop_in_windows_1251_opts_out(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """An incoming SMS reaches the journey that last wrote to the phone; SMSC's default charset is
    windows-1251, which its hash is computed in as well."""
    workflow_id = await stack.journey("NC-SMSC-STOP")
    await add_outbox(stack.db, workflow_id, "d-30-sms", "sms", provider_message_id="1", recipient=PHONE)
    form = {
        "sms_id": "700001",
        "phone": "79161234567",
        "mes": "СТОП",
        "to": "79037000000",
        "sent": "1796206500",
        "md5": smsc_md5("700001", "79161234567", "СТОП", charset="cp1251"),
    }
    response = await stack.smsc(form, query="", charset="cp1251")
    assert response.status_code == 200, response.text
    result = await stack.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
    assert result.stage is Stage.OPTED_OUT
    assert ("opt_out", "sms") in [(e.type, e.detail) for e in result.events]

    stranger = {**form, "sms_id": "700002", "phone": "79990000001"}
    stranger["md5"] = smsc_md5("700002", "79990000001", "СТОП", charset="cp1251")
    assert (await stack.smsc(stranger, query="", charset="cp1251")).status_code == 200
    assert await stack.stored("sms", "smsc-in-700002") == 0
    assert "smsc incoming SMS 700002 from a number we sent nothing to" in caplog.text
    assert "9161234567" not in caplog.text and "9990000001" not in caplog.text  # no phone in any log line


# ---- VK Callback API -----------------------------------------------------------------------------


def vk_event(kind: str, obj: dict[str, Any], event_id: str, secret: str | None = VK_SECRET) -> dict[str, Any]:
    """A Callback API request as VK's documentation shows it: type, object, group_id, event_id, v, secret."""
    event: dict[str, Any] = {
        "type": kind,
        "object": obj,
        "group_id": VK_GROUP,
        "event_id": event_id,
        "v": "5.199",
    }
    if secret is not None:
        event["secret"] = secret
    return event


async def test_vk_confirmation_handshake(stack: Stack) -> None:
    response = await stack.vk({"type": "confirmation", "group_id": VK_GROUP})
    assert response.status_code == 200 and response.text == VK_CONFIRMATION
    assert response.headers["content-type"].startswith("text/plain")
    with_secret = await stack.vk({"type": "confirmation", "group_id": VK_GROUP, "secret": VK_SECRET})
    assert with_secret.text == VK_CONFIRMATION
    other = await stack.vk({"type": "confirmation", "group_id": VK_GROUP + 1})
    assert other.status_code == 403 and VK_CONFIRMATION not in other.text
    wrong = await stack.vk({"type": "confirmation", "group_id": VK_GROUP, "secret": "nope"})
    assert wrong.status_code == 401 and VK_CONFIRMATION not in wrong.text


async def test_vk_wrong_or_missing_secret_is_refused(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-VK-AUTH")
    await add_outbox(stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="880001", recipient=VK_USER)
    reply = {"id": 880001, "peer_id": int(VK_USER), "from_id": -VK_GROUP, "text": "…", "random_id": 5}
    for secret in (None, "", "vk-callback-secreT", VK_SECRET + "x"):
        response = await stack.vk(vk_event("message_reply", reply, "auth-1", secret=secret))
        assert response.status_code == 401, secret
        assert response.text != "ok"
    assert await stack.stored("vk", "vk-auth-1") == 0 and await stack.events(workflow_id) == []


async def test_vk_message_reply_and_read_reach_the_journey_once(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-VK-1")
    await add_outbox(stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="880101", recipient=VK_USER)
    reply = {
        "id": 880101,
        "date": 1796206500,
        "peer_id": int(VK_USER),
        "from_id": -VK_GROUP,
        "text": "Ваш полис КАСКО заканчивается…",
        "out": 1,
        "random_id": 1_234_567,
        "conversation_message_id": 3,
    }
    for _ in range(2):  # VK sends an event again when it did not get its "ok" in time
        response = await stack.vk(vk_event("message_reply", reply, "e0a4b1c2d3"))
        assert response.status_code == 200 and response.text == "ok"
    read = {
        "from_id": int(VK_USER),
        "peer_id": int(VK_USER),
        "read_message_id": 880105,
        "conversation_message_id": 4,
    }
    assert (await stack.vk(vk_event("message_read", read, "f1a2b3c4d5"))).text == "ok"
    assert await stack.events(workflow_id) == [("message_delivered", "vk:d-30-vk"), ("vk_read", "vk")]
    assert await stack.stored("vk", "vk-e0a4b1c2d3") == 1


async def test_vk_read_before_our_message_is_not_a_read(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    workflow_id = await stack.journey("NC-VK-READ")
    await add_outbox(
        stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="880300", recipient="7654321"
    )
    read = {"from_id": 7654321, "peer_id": 7654321, "read_message_id": 880299}
    assert (await stack.vk(vk_event("message_read", read, "r-early"))).text == "ok"
    assert await stack.events(workflow_id) == []
    assert "vk message_read from 76***: no message of ours it covers" in caplog.text
    assert "7654321" not in caplog.text  # a VK id is personal data: masked in the log


async def test_vk_stop_in_the_chat_opts_out(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-VK-STOP")
    await add_outbox(
        stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="880201", recipient="2345678"
    )
    hello = {
        "message": {"id": 880202, "from_id": 2345678, "peer_id": 2345678, "text": "А сколько стоит?"},
        "client_info": {"keyboard": True},
    }
    assert (await stack.vk(vk_event("message_new", hello, "n-1"))).text == "ok"
    assert await stack.events(workflow_id) == [("vk_read", "vk")]
    stop = {
        "message": {"id": 880203, "from_id": 2345678, "peer_id": 2345678, "text": " стоп "},
        "client_info": {},
    }
    assert (await stack.vk(vk_event("message_new", stop, "n-2"))).text == "ok"
    result = await stack.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
    assert result.stage is Stage.OPTED_OUT
    assert ("opt_out", "vk") in [(e.type, e.detail) for e in result.events]


async def test_vk_message_deny_is_an_opt_out_of_vk_only(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-VK-DENY")
    await add_outbox(
        stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="880401", recipient="3456789"
    )
    before = await opt_out_count(stack.db)
    for _ in range(2):
        assert (await stack.vk(vk_event("message_deny", {"user_id": 3456789}, "deny-1"))).text == "ok"
    assert await OptOuts(stack.db).reason("3456789") == "vk: message_deny"
    assert await opt_out_count(stack.db) == before + 1  # the VK id only: SMS, e-mail and calls go on
    status = await stack.status(workflow_id)
    assert status.stage is not Stage.OPTED_OUT


async def test_vk_events_we_cannot_use_are_acknowledged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = {"id": 990001, "peer_id": 1, "from_id": -VK_GROUP, "text": "a post by an admin"}
    response = await stack.vk(vk_event("message_reply", unknown, "u-1"))
    assert response.text == "ok"  # VK would retry anything else, for ever
    assert "vk message_reply callback vk-u-1 for an unknown journey" in caplog.text
    other = await stack.vk(vk_event("wall_post_new", {"id": 1}, "u-2"))
    assert other.text == "ok"
    stranger = await stack.vk(
        vk_event("message_new", {"message": {"id": 5, "from_id": 42, "text": "hi"}}, "u-3")
    )
    assert stranger.text == "ok"
    assert await stack.stored("vk", "vk-u-1") == 0


async def test_vk_malformed_input_is_4xx(stack: Stack) -> None:
    for body in (
        b"",
        b"{",
        b"[]",
        b'{"type": "message_reply"}',
        b'{"type": 1, "group_id": "x"}',
        b"\xff\xfe",
    ):
        response = await stack.http.post("/webhooks/native/vk", content=body)
        assert response.status_code == 400, body
    no_id = await stack.vk(vk_event("message_reply", {"text": "x"}, "m-1"))
    assert no_id.status_code == 400
    no_user = await stack.vk(vk_event("message_deny", {}, "m-2"))
    assert no_user.status_code == 400
    injected = await stack.vk(vk_event("message_reply\nFAKE LOG LINE", {"id": 880001}, "m-4", secret="x"))
    assert injected.status_code == 400
    control = await stack.vk(vk_event("message_reply", {"id": 880001}, "m\x00-3"))
    assert control.status_code == 400 and "\x00" not in control.text
    huge = await stack.http.post("/webhooks/native/vk", content=b"{" + b" " * MAX_BODY + b"}")
    assert huge.status_code == 413


# ---- the robot vendor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("agreed", "agreed"),
        ("refused", "refused"),
        ("callback_requested", "callback"),
        ("do_not_call", "do_not_contact"),
        ("busy", "busy"),
        ("answered", "no_answer"),
        ("voicemail", "no_answer"),
        ("NO_ANSWER", "no_answer"),
    ],
)
async def test_robot_results_map_to_outcomes(stack: Stack, result: str, outcome: str) -> None:
    workflow_id = await stack.journey(f"NC-ROBOT-{result.upper().replace('_', '')}")
    task = f"vendor-task-{result}"  # the vendor's id of the call: unique per call
    key = await add_outbox(stack.db, workflow_id, "d-29-robot_call", "robot_call", provider_message_id=task)
    payload = {"task_id": task, "client_task_id": key, "result": result, "duration": 41, "attempt": 1}
    response = await stack.robot(payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "journey_id": workflow_id, "signal": "robot_outcome"}
    assert await stack.events(workflow_id) == [(f"robot_outcome: {outcome}", task)]
    again = await stack.robot(payload)
    assert again.json()["status"] == "duplicate"
    assert await stack.events(workflow_id) == [(f"robot_outcome: {outcome}", task)]


async def test_robot_result_auth_and_bad_input(stack: Stack) -> None:
    workflow_id = await stack.journey("NC-ROBOT-AUTH")
    key = await add_outbox(
        stack.db, workflow_id, "d-29-robot_call", "robot_call", provider_message_id="task-9"
    )
    payload = {"task_id": "task-9", "client_task_id": key, "result": "busy"}
    body = json.dumps(payload).encode()
    assert (await stack.http.post("/webhooks/native/robot", content=body)).status_code == 401
    assert (await stack.robot(payload, secret=SECRETS["robot"])).status_code == 401  # our format's secret
    bearer = await stack.http.post(
        "/webhooks/native/robot", content=body, headers={"Authorization": f"Bearer {ROBOT_SECRET}"}
    )
    assert bearer.status_code == 200  # a vendor that can only set a static header
    assert (await stack.robot({**payload, "result": "teleported"})).status_code == 422
    assert (await stack.robot({"task_id": "task-9"})).status_code == 422
    assert (await stack.robot({**payload, "task_id": "t\x00"})).status_code == 422
    unknown = await stack.robot(
        {**payload, "client_task_id": "renewal-NOPE-20300101:d-29-robot_call:robot_call"}
    )
    assert unknown.status_code == 404  # the vendor retries: the call's row may not be committed yet
    not_json = await stack.http.post(
        "/webhooks/native/robot", content=b"{", headers={"X-Signature": sign(ROBOT_SECRET, b"{")}
    )
    assert not_json.status_code == 422


async def test_openapi_lists_the_native_routes(stack: Stack) -> None:
    paths = (await stack.http.get("/openapi.json")).json()["paths"]
    assert {"/webhooks/native/smsc", "/webhooks/native/vk", "/webhooks/native/robot"} <= set(paths)


async def test_nothing_configured_refuses_everything(stack: Stack) -> None:
    stack.app.dependency_overrides[native_config] = lambda: NativeCallbacks()
    try:
        assert (await stack.smsc(smsc_status("12", "1"))).status_code == 401
        assert (await stack.vk({"type": "confirmation", "group_id": VK_GROUP})).status_code == 403
        assert (
            await stack.robot({"task_id": "t", "client_task_id": "k", "result": "busy"})
        ).status_code == 401
    finally:
        stack.app.dependency_overrides[native_config] = lambda: CONFIG


# ---- the fake gateway in native mode -------------------------------------------------------------


async def test_gateway_emits_native_callbacks(stack: Stack) -> None:
    """`callback_format="native"`: the fake SMSC posts its handler form (with the md5), the fake VK a
    `message_reply` event, the fake robot its result — and each reaches the journey."""
    workflow_id = await stack.journey("NC-GATEWAY-1")
    sms_key = f"{workflow_id}:d-30-sms:sms"
    smsc_id = str(smsc_message_id(sms_key))
    await add_outbox(stack.db, workflow_id, "d-30-sms", "sms", provider_message_id=smsc_id, recipient=PHONE)
    await add_outbox(stack.db, workflow_id, "d-30-vk", "vk", provider_message_id="1", recipient=VK_USER)
    robot_key = await add_outbox(stack.db, workflow_id, "d-29-robot_call", "robot_call")
    config = GatewayConfig(
        callback_format="native",
        sms_webhook_url="http://webhooks/webhooks/native/smsc?charset=utf-8",
        smsc_callback_key=SMSC_KEY,
        vk_webhook_url="http://webhooks/webhooks/native/vk",
        vk_callback_secret=VK_SECRET,
        vk_group_id=VK_GROUP,
        robot_webhook_url="http://webhooks/webhooks/native/robot",
        robot_webhook_secret=ROBOT_SECRET,
        robot_default_outcome=RobotOutcome.BUSY,
    )
    callbacks = httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.app), base_url="http://webhooks")
    gateway = Gateway(config, callback_client=callbacks)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_gateway_app(gateway)), base_url="http://gw"
    ) as gw:
        vk = await gw.post(
            "/method/messages.send", data={"user_id": VK_USER, "random_id": "77", "message": "Напоминание"}
        )
        assert vk.json() == {"response": 1}  # the outbox row above holds this id
        sms = await gw.post(
            "/sys/send.php", data={"phones": "79161234567", "mes": "Напоминание", "id": smsc_id}
        )
        assert sms.json()["id"] == int(smsc_id)
        call = await gw.post(
            "/api/v1/call-tasks", json={"client_task_id": robot_key, "phone": PHONE, "script": "Даша"}
        )
        assert call.status_code == 201
        await gateway.drain_callbacks()
    await gateway.aclose()
    events = await stack.events(workflow_id)
    assert sorted(events) == sorted(
        [
            ("message_delivered", "vk:d-30-vk"),
            ("message_delivered", "sms:d-30-sms"),
            ("robot_outcome: busy", "task-3"),
        ]
    )


# ---- property: whatever arrives, never a 5xx, never accepted unauthenticated ------------------------

vk_objects = st.dictionaries(
    st.sampled_from(["id", "user_id", "from_id", "peer_id", "read_message_id", "text", "message"]),
    st.one_of(
        st.integers(-(2**40), 2**40), st.text(max_size=6), st.none(), st.just({"id": 1, "text": "стоп"})
    ),
    max_size=4,
)
vk_bodies: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["confirmation", "message_reply", "message_read", "message_new", "message_deny", "x"]
        ),
        "group_id": st.sampled_from([VK_GROUP, VK_GROUP + 1, "x", None]),
        "secret": st.sampled_from([VK_SECRET, "bad", None, ""]),
        "object": st.one_of(vk_objects, st.just([]), st.none()),
        "event_id": st.sampled_from(["p-1", "p-2", "", "a\x00"]),
    }
)
smsc_forms = st.dictionaries(
    st.sampled_from(["id", "sms_id", "phone", "status", "mes", "err", "md5", "sha1"]),
    st.one_of(st.sampled_from(["1", "0", "20", "-1", "79161234567", "СТОП", ""]), st.text(max_size=5)),
    max_size=6,
)


@st.composite
def native_requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str], bool]:
    """(route, body, headers, authentic): VK events and SMSC forms, often signed, and anything at all."""
    route = draw(st.sampled_from(["smsc", "vk", "robot"]))
    if draw(st.booleans()):
        return route, draw(st.binary(max_size=80)), {}, False
    if route == "vk":
        event = draw(vk_bodies)
        event = {k: v for k, v in event.items() if v is not None or draw(st.booleans())}
        authentic = event.get("group_id") == VK_GROUP and (
            event.get("secret") == VK_SECRET
            or (event["type"] == "confirmation" and event.get("secret") is None)
        )
        return route, json.dumps(event).encode(), {}, authentic
    if route == "smsc":
        form = draw(smsc_forms)
        signed = draw(st.booleans())
        if signed:
            fields = (
                ("sms_id", "phone", "mes")
                if "sms_id" in form and "id" not in form
                else ("id", "phone", "status")
            )
            form["md5"] = smsc_md5(*(form.get(f, "") for f in fields))
        return route, urlencode(form).encode(), {}, signed
    payload = draw(
        st.dictionaries(st.sampled_from(["task_id", "client_task_id", "result"]), st.text(max_size=6))
    )
    body = json.dumps(payload).encode()
    signed = draw(st.booleans())
    return route, body, ({"X-Signature": sign(ROBOT_SECRET, body)} if signed else {}), signed


def test_any_native_request_is_4xx_or_acknowledged_never_5xx(tmp_path: Path) -> None:
    """The real app and service on SQLite with a fake Temporal client (tests/test_webhooks_props.py):
    nothing a caller sends makes a native route fail with a 5xx, and nothing unauthenticated is 2xx."""
    loop = asyncio.new_event_loop()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/props.db")
    loop.run_until_complete(db.migrate())
    app = create_app(db, cast(Client, FakeClient()), SECRETS)
    app.dependency_overrides[native_config] = lambda: CONFIG
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=native_requests())
    def check(request: tuple[str, bytes, dict[str, str], bool]) -> None:
        route, body, headers, authentic = request
        query = "?charset=utf-8" if route == "smsc" else ""
        response = loop.run_until_complete(
            http.post(f"/webhooks/native/{route}{query}", content=body, headers=headers)
        )
        assert response.status_code < 500, (route, body, response.text)
        if not authentic:
            assert response.status_code >= 400, (route, body, response.text)

    try:
        check()
    finally:
        loop.run_until_complete(http.aclose())
        loop.run_until_complete(db.dispose())
        loop.close()

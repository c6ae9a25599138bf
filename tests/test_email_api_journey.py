"""The whole way round: a journey's −30 e-mail goes out through the HTTP e-mail adapter to the fake
Unisender Go API, whose status webhook comes back through `/webhooks/email-api`, and the open it
reports holds Робот Даша's −29 call back («не открыл письмо»); a hard bounce is reported as undelivered
and the robot calls. On the time-skipping server, the whole path in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from fake_providers import FaultConfig, Gateway, GatewayConfig
from fake_providers import create_app as gateway_app
from fake_providers.email_api import EmailApiSettings, configure
from renewals.channels.base import Channels
from renewals.channels.email_http import METADATA_KEY, EmailApiConfig, EmailApiProvider, email_api_id
from renewals.channels.recording import DatabasePortal, RecordingMessages, ScriptedRobot
from renewals.db.database import Database
from renewals.models import Channel
from renewals.webhooks.app import create_app
from renewals.webhooks.email_api import ROUTE
from tests.factories import policy
from tests.harness import journey_harness, msk
from workflows.renewal import RenewalJourney

API_KEY = "unisender-project-key"
SECRETS = {"email_api": API_KEY}


class LateApp:
    """An ASGI app set after the gateway is built (the webhook service needs the harness's client)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def test_an_open_reported_by_the_api_holds_the_robot_back(tmp_path: Path) -> None:
    webhooks = LateApp()
    gateway = Gateway(
        GatewayConfig(faults=FaultConfig(blocked_recipients=["bounce@example.org"])),
        callback_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=webhooks), base_url="http://wh"),
    )
    configure(
        gateway,
        EmailApiSettings(api_key="k", webhook_url="http://wh" + ROUTE, webhook_key=API_KEY, open_rate=1.0),
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/e2e.db")
    messages = RecordingMessages(db)
    api = EmailApiProvider(
        EmailApiConfig(
            base_url="http://gw/ru/transactional/api/v1", api_key="k", sender_address="r@alfa.example"
        ),
        client=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway_app(gateway)), base_url="http://gw"
        ),
    )
    channels = Channels(
        {
            Channel.SMS: messages,
            Channel.VK: messages,
            Channel.EMAIL: api,
            Channel.ROBOT_CALL: ScriptedRobot(db),
        },
        DatabasePortal(db),
    )
    async with journey_harness(tmp_path, channels, db) as h:
        webhooks.app = create_app(db, h.env.client, SECRETS)
        opener = policy(
            "KASKO", number="EA-E2E-1", renewal_centre=True, client={"email": "reader@example.org"}
        )
        bouncer = policy(
            "KASKO",
            number="EA-E2E-2",
            renewal_centre=True,
            client={"email": "bounce@example.org", "phone": "+79161110022"},
        )
        handles = [await h.start(p, msk(3, 1, 10)) for p in (opener, bouncer)]
        await h.skip_to(msk(3, 21, 14))  # −30 (Sunday 21.03): the e-mails went out
        await gateway.drain_callbacks()  # the API's webhooks have been answered
        await h.skip_to(msk(3, 23, 7))  # past Monday's −29 robot call
        statuses = [await handle.query(RenewalJourney.status) for handle in handles]
    await api.aclose()
    await gateway.aclose()
    await db.dispose()

    opened, bounced = statuses
    assert [(e.type, e.detail) for e in opened.events] == [
        ("message_delivered", "email:d-30-email"),
        ("email_opened", "email"),
    ]
    robot = [e for e in opened.timeline if e.channel is Channel.ROBOT_CALL]
    assert [(e.status.value, e.reason) for e in robot] == [("suppressed", "client_engaged (email_opened)")]
    assert [(e.type, e.detail) for e in bounced.events] == [("message_undelivered", "email:d-30-email")]
    assert next(e.status.value for e in bounced.timeline if e.channel is Channel.ROBOT_CALL) == "sent"
    lines = gateway.log.records("email")
    assert len(lines) == 2 and all(not line.repeat for line in lines)
    assert {line.meta["metadata"][METADATA_KEY] for line in lines} == {
        email_api_id(f"{handle.id}:d-30-email:email") for handle in handles
    }

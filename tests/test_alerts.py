"""Alerts of channel pauses and provider pauses: to the log and the configured destination (a signed
webhook, e-mail through the e-mail provider), once per pause however many sends meet the refusal,
never blocking or failing a send when the destination is down, and never carrying personal data."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.renewal import JourneyActivities
from renewals.activity_io import SendRequest
from renewals.alerts import AlertConfig, Alerts, configure_alerts
from renewals.channels.base import Channels, Delivery
from renewals.channels.errors import ChannelPaused, ErrorType
from renewals.channels.factory import recording_channels
from renewals.channels.failover import FailoverProvider
from renewals.db.database import Database
from renewals.delivery import ChannelPauses
from renewals.models import Channel
from renewals.webhooks.auth import authentic

PHONE = "+79161234567"
HOOK = "https://alerts.ops.test/hook"
HOOK_SECRET = "alert-secret"


class Hook:
    """The alert webhook behind MockTransport; `status` 0 means it is unreachable."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status == 0:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(self.status)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


class Mailbox:
    """The e-mail provider the alerts go through: records, or fails when `down`."""

    name = "mailbox"
    reconciles = False

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.sent: list[SendRequest] = []

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        if self.down:
            raise ChannelPaused(ErrorType.AUTH_FAILED, "mailbox: HTTP 401", self.name)
        self.sent.append(request)
        return Delivery(provider=self.name, message_id=f"m-{len(self.sent)}")

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
        return None


class Broke:
    """An SMS provider that refuses our account, quoting the number in its message (as some do)."""

    reconciles = False

    def __init__(self, name: str = "smsc") -> None:
        self.name = name
        self.calls = 0

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        self.calls += 1
        raise ChannelPaused(
            ErrorType.INSUFFICIENT_FUNDS, f"no funds to send to {request.recipient}", self.name
        )

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
        return None


def sink(hook: Hook | None = None, mailbox: Mailbox | None = None, emails: bool = True) -> Alerts:
    config = AlertConfig(
        emails=["ops@agency.test"] if emails else [],
        webhook_url=HOOK if hook is not None else None,
        webhook_secret=SecretStr(HOOK_SECRET) if hook is not None else None,
        attempts=2,
    )
    return Alerts(config, email=mailbox, client=hook.client() if hook is not None else None)


def sms(key: str = "t1") -> SendRequest:
    return SendRequest(
        journey_id="renewal-x-20270101",
        touchpoint=key,
        channel=Channel.SMS,
        template="base_sms_minus_30",
        recipient=PHONE,
        text="Иван Петров, ваш полис истекает",
    )


async def test_one_alert_per_channel_pause_however_many_sends_meet_it(sqlite_db: Database) -> None:
    hook, mailbox = Hook(), Mailbox()
    alerts = sink(hook, mailbox)
    pauses = ChannelPauses(sqlite_db, timedelta(minutes=15), alerts=alerts)
    now = datetime(2027, 4, 14, 9, 0, tzinfo=UTC)
    # Three sends refused at once (one worker each), then one more a minute later: one pause.
    await asyncio.gather(
        *(pauses.pause_channel(Channel.SMS, "InsufficientFunds: no funds", now) for _ in range(3))
    )
    until = await pauses.pause_channel(Channel.SMS, "InsufficientFunds: no funds", now + timedelta(minutes=1))
    await alerts.drain()
    assert until == now + timedelta(minutes=16), "the pause is extended"
    assert len(hook.requests) == 1 and len(mailbox.sent) == 1
    # The pause ran out; the provider still refuses us: a new pause, a new alert.
    await pauses.pause_channel(Channel.SMS, "InsufficientFunds: no funds", now + timedelta(minutes=20))
    await alerts.drain()
    assert len(hook.requests) == 2 and len(mailbox.sent) == 2
    first = hook.requests[0]
    assert authentic(HOOK_SECRET, first.content, first.headers["X-Signature"], None, False)
    payload = json.loads(first.content)
    assert payload["kind"] == "channel_paused" and payload["channel"] == "sms"
    assert payload["error_type"] == "InsufficientFunds"
    assert first.headers["Idempotency-Key"] == payload["key"]
    mail = mailbox.sent[0]
    assert (
        mail.recipient == "ops@agency.test"
        and mail.subject is not None
        and "channel sms paused" in mail.subject
    )


async def test_the_send_path_alerts_once_without_personal_data(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The real send activity: two sends refused for lack of funds pause SMS once, alert once, and
    neither the alert nor its log line quotes the number or the text."""
    hook = Hook()
    alerts = sink(hook, Mailbox())
    base = recording_channels(sqlite_db)
    broke = Broke()
    activities = JourneyActivities(sqlite_db, Channels({**base.providers, Channel.SMS: broke}, base.portal))
    activities.pauses.alerts = alerts
    env = ActivityEnvironment()
    caplog.set_level(logging.INFO)
    for key in ("t1", "t2"):
        with pytest.raises(ApplicationError) as paused:
            await env.run(activities.send, sms(key))
        assert not paused.value.non_retryable, "a paused channel waits, it does not fail the send"
        activities.pauses._read_at = datetime.min.replace(tzinfo=UTC)  # as if another worker
    await alerts.drain()
    assert broke.calls == 1 and len(hook.requests) == 1, "the second send waits for the pause"
    assert PHONE not in hook.requests[0].content.decode() and "Иван" not in hook.requests[0].content.decode()
    alert_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert len(alert_lines) == 1 and PHONE not in alert_lines[0]


async def test_a_destination_that_is_down_never_blocks_or_fails_the_send(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook(status=0)  # unreachable
    alerts = sink(hook, Mailbox(down=True))
    pauses = ChannelPauses(sqlite_db, timedelta(minutes=15), alerts=alerts)
    caplog.set_level(logging.WARNING)
    until = await asyncio.wait_for(
        pauses.pause_channel(Channel.VK, "AuthFailed: VK error 5", datetime.now(UTC)), timeout=1.0
    )
    assert until > datetime.now(UTC)
    assert alerts._tasks, "delivery runs in the background, after the pause is recorded"
    await alerts.drain()
    assert len(hook.requests) == 2, "the webhook was retried, then given up"
    messages = [r.getMessage() for r in caplog.records]
    assert any("not delivered to the webhook" in m for m in messages)
    assert any("not e-mailed to o***@agency.test: ChannelPaused" in m for m in messages)
    assert alerts.delivered == []


async def test_a_paused_email_channel_alerts_through_the_webhook_only(sqlite_db: Database) -> None:
    hook, mailbox = Hook(), Mailbox()
    alerts = sink(hook, mailbox)
    pauses = ChannelPauses(sqlite_db, timedelta(minutes=15), alerts=alerts)
    await pauses.pause_channel(Channel.EMAIL, "AuthFailed: SMTP auth failed (535)", datetime.now(UTC))
    await alerts.drain()
    assert mailbox.sent == [] and len(hook.requests) == 1
    assert alerts.delivered == [("webhook", json.loads(hook.requests[0].content)["key"])]


async def test_a_failover_provider_pause_alerts_once_and_the_others_carry_on() -> None:
    hook = Hook()
    alerts = sink(hook, emails=False)
    broke = Broke("smsc")

    class Works:
        name = "smsc-backup"
        reconciles = False

        async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
            return Delivery(provider=self.name, message_id=request.touchpoint)

        async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
            return None

    now = [0.0]
    chain = FailoverProvider(
        [broke, Works()], name="sms-failover", pause_seconds=60, clock=lambda: now[0], alerts=alerts
    )
    for key in ("a", "b", "c"):
        assert (await chain.deliver(sms(key))).provider == "smsc-backup"
    assert broke.calls == 1, "paused: the other sends skip it"
    now[0] = 61.0  # its pause is over: probed again, refused again — a new pause
    assert (await chain.deliver(sms("d"))).provider == "smsc-backup"
    await alerts.drain()
    payloads = [json.loads(r.content) for r in hook.requests]
    assert [p["kind"] for p in payloads] == ["provider_paused", "provider_paused"]
    assert payloads[0]["provider"] == "sms-failover/smsc" and payloads[0]["error_type"] == "InsufficientFunds"
    assert all(PHONE not in r.content.decode() for r in hook.requests)


def test_an_unsigned_webhook_is_refused() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_URL is set without RENEWALS_ALERTS__WEBHOOK_SECRET"):
        configure_alerts(AlertConfig(webhook_url=HOOK))
    with pytest.raises(ValueError, match=r"emails\[1\]: not an e-mail address"):
        AlertConfig(emails=["ops@agency.test", "ops"])


def test_no_destination_means_the_log_only(caplog: pytest.LogCaptureFixture) -> None:
    from renewals.alerts import Alert

    alerts = Alerts()
    caplog.set_level(logging.ERROR)
    alert = Alert(key="k", kind="channel_paused", channel="sms", error_type="InsufficientFunds")
    assert alerts.raise_alert(alert) is True
    assert alerts.raise_alert(alert) is False, "the same pause is alerted once"
    assert [r.getMessage() for r in caplog.records] == ["ALERT channel sms paused (InsufficientFunds)"]


async def test_sends_that_find_the_pauses_stale_at_once_read_them_once(sqlite_db: Database) -> None:
    """Sixty sends at once, the cache cold: one read of the table, and every send sees its pause."""
    now = datetime(2027, 4, 14, 9, 0, tzinfo=UTC)
    await ChannelPauses(sqlite_db).pause_channel(Channel.SMS, "InsufficientFunds: no funds", now)
    reads: list[str] = []

    def count(conn: object, cursor: object, statement: str, *_: object) -> None:
        if "FROM channel_pauses" in statement:
            reads.append(statement)

    pauses = ChannelPauses(sqlite_db)
    event.listen(sqlite_db.engine.sync_engine, "before_cursor_execute", count)
    try:
        found = await asyncio.gather(*(pauses.paused(Channel.SMS, now) for _ in range(60)))
    finally:
        event.remove(sqlite_db.engine.sync_engine, "before_cursor_execute", count)
    assert len(reads) == 1
    assert all(row is not None and row.reason.startswith("InsufficientFunds") for row in found)

"""Delivery guarantees through the real adapters and the fake providers' real HTTP/SMTP APIs:
under injected faults every message arrives exactly once, permanent errors are recorded and not
retried, and an SMS provider outage fails over without sending anything twice. Then the send
activities themselves: the outbox claim, reconciling a resumed send, robot calls, paused channels."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event, select
from temporalio.api.enums.v1 import EventType, RetryState
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.renewal import JourneyActivities
from fake_providers import Gateway, RequestRecord, SmtpSink, create_app, messages_per_key
from fake_providers.config import FaultConfig, GatewayConfig
from renewals.activity_io import SendReceipt, SendRequest, dedup_key
from renewals.channels.base import Channels, Delivery
from renewals.channels.factory import build_channels, gateway_settings
from renewals.channels.failover import FailoverProvider
from renewals.channels.recording import DatabasePortal
from renewals.channels.robot_http import RobotHttpConfig, RobotHttpProvider
from renewals.channels.smsc import SmscConfig, SmscProvider, smsc_message_id
from renewals.channels.vk import VkConfig, VkProvider
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.journey_api import RobotOutcome
from renewals.models import Channel
from renewals.sendwindow import zone
from renewals.settings import Settings
from renewals.webhooks.app import create_app as create_webhooks_app
from tests.factories import policy
from tests.harness import journey_harness
from tests.test_gateway_helpers import OTHER_PHONE, PHONE, asgi_client, send_request, serve
from workflows.renewal import RenewalJourney

T = TypeVar("T")
MSK = zone("Europe/Moscow")
INTAKE = datetime(2027, 3, 1, 10, tzinfo=MSK)
AFTER_MINUS_30 = datetime(2027, 3, 21, 14, tzinfo=MSK)  # −30 is Sunday 21.03, sent from 09:00
AFTER_MINUS_29 = datetime(2027, 3, 23, 7, tzinfo=MSK)  # the robot's −29 call (Monday) is over


@dataclass
class Sandbox:
    gateway: Gateway
    settings: Settings


@asynccontextmanager
async def sandbox_gateway(tmp_path: Path, faults: FaultConfig) -> AsyncIterator[Sandbox]:
    gateway = Gateway(GatewayConfig(log_path=tmp_path / "gateway.jsonl", faults=faults))
    sink = SmtpSink(gateway)
    await sink.start()
    try:
        async with serve(create_app(gateway)) as url:
            yield Sandbox(
                gateway,
                Settings(
                    channels="gateway",
                    gateway_url=url,
                    gateway_smtp_port=sink.port,
                    provider_timeout_seconds=1.5,
                ),
            )
    finally:
        await gateway.aclose()
        await sink.stop()


def centre_policy(i: int, phone: str | None = None):  # type: ignore[no-untyped-def]
    return policy(
        "KASKO",
        number=f"GW-{i:04d}",
        renewal_centre=True,
        client={"phone": phone or f"+7916{i:07d}", "email": f"c{i}@example.org", "vk_id": str(5000 + i)},
    )


def permanent_once(requests: list[RequestRecord], refusals: set[str]) -> bool:
    """The permanent answer came exactly once and nothing was asked after it (no retry)."""
    outcomes = [r.outcome for r in requests]
    return sum(o in refusals for o in outcomes) == 1 and outcomes[-1] in refusals


async def test_thirty_percent_faults_every_message_exactly_once(tmp_path: Path) -> None:
    """30 % of requests fail: 5xx, 429, a timeout after accept (answer lost), a timeout before accept
    (request dropped). Plus one permanent error per channel: an invalid phone (SMS and robot), a VK
    user who forbids messages, an e-mail address refused with 550 — each journey's other channels
    still go out. Counted in the gateway's log of every request: exactly one message per key."""
    bad_phone, vk_blocked, email_blocked = "+79990000001", str(5000 + 98), "c97@example.org"
    faults = FaultConfig(
        error_rate=0.1,
        rate_limit_rate=0.1,
        timeout_rate=0.05,
        stall_rate=0.05,
        hang_seconds=3,
        invalid_phones=[bad_phone],
        blocked_recipients=[vk_blocked, email_blocked],
        seed=7,
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/faults.db")
    async with sandbox_gateway(tmp_path, faults) as sandbox:
        channels = build_channels(sandbox.settings, db)
        async with journey_harness(tmp_path, channels, db) as h:
            policies = [centre_policy(i) for i in range(40)]
            policies += [centre_policy(97), centre_policy(98), centre_policy(99, phone=bad_phone)]
            handles = [await h.start(p, INTAKE) for p in policies]
            await h.skip_to(AFTER_MINUS_29)  # −30's messages and −29's robot call
            statuses = [await handle.query(RenewalJourney.status) for handle in handles]
            bad_history = await handles[-1].fetch_history()
        gateway = sandbox.gateway
        lines = [r.model_dump() for r in gateway.log.records()]
        async with db.session() as session:
            outbox = (await session.execute(select(OutboxRow))).scalars().all()
    await db.dispose()

    good = {"email": 42, "vk": 42, "sms": 42, "robot": 42}  # 43 journeys, one permanent error each
    messages = messages_per_key(lines)
    assert Counter(channel for channel, _ in messages) == good
    # Copies of an e-mail the server accepted while its answer was lost (the HANG fault):
    lost_answers = Counter(r.key for r in gateway.requests.records("email") if r.outcome == "hang")
    for (channel, key), count in messages.items():
        # SMSC, VK and the robot: exactly once. E-mail: SMTP has no dedup, so each lost answer may
        # bring one resend — only then, with the same Message-ID (README, "E-mail (SMTP)").
        allowed = 1 + lost_answers[key] if channel == "email" else 1
        assert 1 <= count <= allowed, (channel, key, count)
    outcomes = Counter(r.outcome for r in gateway.requests.records())
    assert min(outcomes[o] for o in ("error", "rate_limit", "hang", "stall", "repeat")) > 0, outcomes
    assert {r["recipient"] for r in lines if r["channel"] == "sms"} == {
        f"7916{i:07d}" for i in [*range(40), 97, 98]
    }

    for status in statuses[:40]:
        assert [(e.channel.value, e.status.value) for e in status.timeline] == [
            ("email", "sent"),
            ("vk", "sent"),
            ("sms", "sent"),
            ("robot_call", "sent"),
        ]
    timelines = [{e.channel.value: e.status.value for e in s.timeline} for s in statuses[40:]]
    assert timelines == [  # each permanent error failed its channel only
        {"email": "failed", "vk": "sent", "sms": "sent", "robot_call": "sent"},
        {"email": "sent", "vk": "failed", "sms": "sent", "robot_call": "sent"},
        {"email": "sent", "vk": "sent", "sms": "failed", "robot_call": "failed"},  # the phone, for both
    ]
    reasons = [{e.channel.value: e.reason or "" for e in s.timeline} for s in statuses[40:]]
    assert reasons[0]["email"].startswith("InvalidEmail") and reasons[1]["vk"].startswith(
        "NotAllowedByRecipient"
    )
    assert reasons[2]["sms"].startswith("InvalidPhone") and reasons[2]["robot_call"].startswith(
        "InvalidPhone"
    )

    # Permanent errors: answered once, never asked again.
    sms_key = f"{smsc_message_id(dedup_key(handles[-1].id, 'd-30-sms', Channel.SMS))}:79990000001"
    assert permanent_once(gateway.requests.records("sms", key=sms_key), {"rejected:7"})
    robot_key = dedup_key(handles[-1].id, "d-29-robot_call", Channel.ROBOT_CALL)
    assert permanent_once(gateway.requests.records("robot", key=robot_key), {"rejected:invalid_phone"})
    assert permanent_once(gateway.requests.records("vk", recipient=vk_blocked), {"refused", "rejected:901"})
    assert permanent_once(gateway.requests.records("email", recipient=email_blocked), {"rejected:550"})
    failures = [
        e.activity_task_failed_event_attributes
        for e in bad_history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert failures[-1].retry_state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE  # not retried

    assert Counter(r.status for r in outbox) == {"sent": 40 * 4 + 3 * 2 + 2, "failed": 4}
    robot_rows = [r for r in outbox if r.channel == "robot_call" and r.status == "sent"]
    assert len(robot_rows) == 42 and all(
        (r.provider_message_id or "").startswith("task-") for r in robot_rows
    )
    assert {r.reason.split(":")[0] for r in outbox if r.status == "failed" and r.reason} == {
        "InvalidEmail",
        "NotAllowedByRecipient",
        "InvalidPhone",
    }


async def test_sms_provider_outage_fails_over_and_sends_nothing_twice(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/outage.db")
    async with sandbox_gateway(tmp_path, FaultConfig()) as sandbox:
        via_gateway = gateway_settings(sandbox.settings)
        assert via_gateway.smsc is not None
        dead = SmscConfig(base_url="http://127.0.0.1:9", login="sandbox", password=SecretStr("x"))
        settings = via_gateway.model_copy(
            update={"channels": "providers", "smsc": dead, "smsc_backup": via_gateway.smsc}
        )
        async with journey_harness(tmp_path, build_channels(settings, db), db) as h:
            handles = [
                await h.start(
                    policy(
                        "OSAGO",
                        number=f"OUT-{i}",
                        first_prolongation_year=True,
                        client={"phone": f"+7903{i:07d}"},
                    ),
                    INTAKE,
                )
                for i in range(10)
            ]
            await h.skip_to(AFTER_MINUS_30)
            statuses = [await handle.query(RenewalJourney.status) for handle in handles]
        sms = [r.model_dump() for r in sandbox.gateway.log.records(channel="sms")]
        async with db.session() as session:
            providers = (await session.execute(select(OutboxRow.provider))).scalars().all()
    await db.dispose()
    assert all(s.timeline[0].status.value == "sent" for s in statuses)
    assert len(sms) == 10 and set(messages_per_key(sms).values()) == {1}  # every line counted
    assert providers == ["smsc-backup"] * 10


# ---- the send activities, one call at a time (ActivityEnvironment) ---------------------------------


class AcceptThenCrash:
    """Wraps a provider: the first call reaches it, then the worker 'dies' before the commit."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.reconciles = inner.reconciles
        self.crashed = False

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        delivery: Delivery = await self.inner.deliver(request, accepted_by)
        return self._crash_once(delivery)

    def __getattr__(self, name: str) -> Any:  # `find` and the rest: the provider's own
        return getattr(self.inner, name)

    def _crash_once(self, value: T) -> T:
        if not self.crashed:
            self.crashed = True
            raise ConnectionResetError("killed between the provider's accept and the commit")
        return value


@dataclass
class Activities:
    acts: JourneyActivities
    env: ActivityEnvironment
    db: Database
    gateway: Gateway
    transactions: list[int]

    async def send(self, request: SendRequest) -> SendReceipt:
        result: SendReceipt = await self.env.run(self.acts.send, request)
        return result

    async def call(self, request: SendRequest) -> SendReceipt:
        return await self.send(request)

    async def row(self, key: str) -> OutboxRow:
        async with self.db.session() as session:
            return (await session.execute(select(OutboxRow).where(OutboxRow.dedup_key == key))).scalar_one()


def sms_config(**overrides: Any) -> SmscConfig:
    return SmscConfig(base_url="http://gw", login="l", password=SecretStr("p")).model_copy(update=overrides)


@asynccontextmanager
async def activities(
    tmp_path: Path, wrap: Callable[[Any], Any] = lambda provider: provider, sms: Any = None
) -> AsyncIterator[Activities]:
    """The send activities over the in-process gateway's real APIs (SMSC, VK, robot)."""
    gateway = Gateway()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/acts.db")
    await db.migrate()
    vk = VkProvider(VkConfig(base_url="http://gw/method", access_token="t", group_id=1), asgi_client(gateway))
    robot = RobotHttpProvider(RobotHttpConfig(base_url="http://gw", api_key="k"), asgi_client(gateway))
    channels = Channels(
        {
            Channel.SMS: wrap(sms or SmscProvider(sms_config(), asgi_client(gateway))),
            Channel.VK: wrap(vk),
            Channel.ROBOT_CALL: wrap(robot),
        },
        DatabasePortal(db),
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, started_time=datetime.now(UTC))
    transactions: list[int] = []
    event.listen(db.engine.sync_engine, "begin", lambda connection: transactions.append(1))
    try:
        yield Activities(JourneyActivities(db, channels), env, db, gateway, transactions)
    finally:
        await db.dispose()


CALL = SendRequest(
    journey_id="renewal-AB123-20270420",
    touchpoint="d-29-robot_call",
    channel=Channel.ROBOT_CALL,
    template="robot_dasha",
    recipient=PHONE,
    text="s",
    attempt=1,
)


async def test_a_send_is_two_transactions_and_a_first_attempt_sends_without_a_status_query(
    tmp_path: Path,
) -> None:
    """Item 3: claim + opt-out check in one transaction, mark in another (no separate opt-out read).
    Item 2: a fresh row goes straight to send.php."""
    async with activities(tmp_path) as a:
        await a.send(send_request(touchpoint="warm-up"))  # reads the channel pauses once (cached 5 s)
        a.transactions.clear()
        await a.send(send_request())
        assert len(a.transactions) == 2
        assert [(r.endpoint, r.outcome) for r in a.gateway.requests.records("sms")] == [
            ("send", "accepted"),
            ("send", "accepted"),
        ]


async def test_an_opted_out_address_is_suppressed_in_the_claim_itself(tmp_path: Path) -> None:
    async with activities(tmp_path) as a:
        await a.acts.opt_outs.add([PHONE], "opt_out (sms STOP)", None)
        a.transactions.clear()
        with pytest.raises(ApplicationError) as caught:
            await a.send(send_request())
        assert (caught.value.type, caught.value.non_retryable) == ("OptedOut", True)
        assert len(a.transactions) == 1  # the claim wrote the row suppressed
        row = await a.row(send_request().dedup_key)
        assert (row.status, row.reason) == ("suppressed", "OptedOut: opt_out (sms STOP)")
        assert a.gateway.requests.records() == []  # no provider was asked


async def test_a_crash_after_the_accept_is_reconciled_by_status_query(tmp_path: Path) -> None:
    async with activities(tmp_path, wrap=AcceptThenCrash) as a:
        with pytest.raises(ConnectionResetError):
            await a.send(send_request())
        assert (await a.row(send_request().dedup_key)).status == "pending"
        receipt = await a.send(send_request())  # the retry finds the row pending: resumed
        assert receipt.provider_message_id == str(smsc_message_id(send_request().dedup_key))
        assert [(r.endpoint, r.outcome) for r in a.gateway.requests.records("sms")] == [
            ("send", "accepted"),
            ("status", "found"),  # asked, and not sent again
        ]
        assert (await a.row(send_request().dedup_key)).status == "sent"


@pytest.mark.parametrize("delivered", [True, False])
async def test_a_resumed_send_whose_client_opted_out_asks_the_provider_first(
    tmp_path: Path, delivered: bool
) -> None:
    """Item 7: an earlier attempt may have delivered. SMSC says it has the message → the row is
    sent (it went out before the opt-out); it has none → suppressed, and nothing is sent."""
    async with activities(tmp_path, wrap=AcceptThenCrash) as a:
        request = send_request()
        if delivered:
            with pytest.raises(ConnectionResetError):
                await a.send(request)
        else:
            await a.acts.outbox.claim(request)  # a claim whose send never reached SMSC
        await a.acts.opt_outs.add([PHONE], "opt_out (sms STOP)", None)
        if delivered:
            receipt = await a.send(request)
            assert receipt.provider_message_id == str(smsc_message_id(request.dedup_key))
            assert (await a.row(request.dedup_key)).status == "sent"
        else:
            with pytest.raises(ApplicationError) as caught:
                await a.send(request)
            assert caught.value.type == "OptedOut"
            assert (await a.row(request.dedup_key)).status == "suppressed"
        assert len(a.gateway.log.records("sms")) == int(delivered)
        assert a.gateway.requests.records("sms")[-1].endpoint == "status"


async def test_a_resumed_vk_send_relies_on_random_id_and_an_opted_out_one_is_suppressed(
    tmp_path: Path,
) -> None:
    async with activities(tmp_path, wrap=AcceptThenCrash) as a:
        request = send_request(channel=Channel.VK, recipient="123", touchpoint="d-30-vk")
        with pytest.raises(ConnectionResetError):
            await a.send(request)
        first = a.gateway.log.records("vk")[0].provider_id
        assert (await a.send(request)).provider_message_id == first  # VK dropped the repeat
        assert [(r.endpoint, r.outcome) for r in a.gateway.requests.records("vk")] == [
            ("send", "accepted"),
            ("send", "repeat"),  # the resumed attempt: VK dropped the same random_id
        ]
        other = send_request(channel=Channel.VK, recipient="456", touchpoint="d-30-vk", journey_id="j-2")
        await a.acts.outbox.claim(other)
        await a.acts.opt_outs.add(["456"], "opt_out", None)
        with pytest.raises(ApplicationError):  # VK has no status query: suppressed, not resent
            await a.send(other)
        assert (await a.row(other.dedup_key)).status == "suppressed"
        assert a.gateway.requests.records("vk", recipient="456") == []


async def test_robot_calls_go_through_the_outbox(tmp_path: Path) -> None:
    """Item 6: claimed, called with the row's key, marked sent with the task id; a crash between
    the accept and the commit queues nothing new; an opt-out suppresses; a bad number fails."""
    async with activities(tmp_path, wrap=AcceptThenCrash) as a:
        with pytest.raises(ConnectionResetError):
            await a.call(CALL)
        assert (await a.row(CALL.dedup_key)).status == "pending"
        result = await a.call(CALL)
        assert result.provider_message_id == "task-1"
        row = await a.row(CALL.dedup_key)
        assert (row.channel, row.status, row.provider, row.provider_message_id) == (
            "robot_call",
            "sent",
            "robot",
            "task-1",
        )
        assert [(r.key, r.deduplicated) for r in a.gateway.log.records("robot")] == [
            (CALL.dedup_key, False),
            (CALL.dedup_key, True),  # the same client_task_id: the provider answered the first task
        ]
        assert (await a.call(CALL)).provider_message_id == "task-1"  # settled: the outbox answers
        assert len(a.gateway.requests.records("robot")) == 2

        await a.acts.opt_outs.add([OTHER_PHONE], "do_not_contact", None)
        opted = CALL.model_copy(update={"recipient": OTHER_PHONE, "touchpoint": "d-28-robot_call"})
        with pytest.raises(ApplicationError) as caught:
            await a.call(opted)
        assert caught.value.type == "OptedOut" and (await a.row(opted.dedup_key)).status == "suppressed"
        bad = CALL.model_copy(update={"recipient": "+79990000001", "touchpoint": "d-27-robot_call"})
        a.gateway.configure_faults(FaultConfig(invalid_phones=["+79990000001"]))
        with pytest.raises(ApplicationError) as failed:
            await a.call(bad)
        assert failed.value.non_retryable and (await a.row(bad.dedup_key)).status == "failed"


async def test_every_sms_provider_out_of_funds_pauses_the_channel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 4: with failover, 'no funds' still alerts and pauses (the provider, then the channel),
    instead of a transient 'all providers failed' that would burn retries."""
    no_funds = httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json={"error": "no money", "error_code": 3})
        )
    )
    providers = [
        SmscProvider(sms_config(), no_funds, "smsc"),
        SmscProvider(sms_config(), no_funds, "smsc-backup"),
    ]
    async with activities(tmp_path, sms=FailoverProvider(providers)) as a:
        with caplog.at_level(logging.ERROR), pytest.raises(ApplicationError) as caught:
            await a.send(send_request())
        assert (caught.value.type, caught.value.non_retryable) == ("InsufficientFunds", False)
        assert caught.value.next_retry_delay == timedelta(minutes=15)
        alerts = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
        assert len(alerts) == 3  # each provider, then the channel
        assert "channel sms paused" in alerts[-1]
        assert await a.acts.pauses.paused(Channel.SMS, datetime.now(UTC)) is not None


async def test_the_gateways_robot_outcome_reaches_the_journey_through_our_webhook_service(
    tmp_path: Path,
) -> None:
    """Item 12: the gateway posts the call's outcome as `RobotCallback`, signed with the robot
    source's secret, to our webhook service, which signals the journey (as in `./run stack`)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/hooks.db")
    async with sandbox_gateway(tmp_path, FaultConfig()) as sandbox:
        gateway = sandbox.gateway
        async with journey_harness(tmp_path, build_channels(sandbox.settings, db), db) as h:
            hooks = create_webhooks_app(db, h.env.client, {"robot": "robot-secret"})
            gateway.config.robot_webhook_url = "http://hooks/webhooks/robot"
            gateway.config.robot_webhook_secret = "robot-secret"
            gateway._callback_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=hooks))
            gateway.robot_script["79160000001"] = [RobotOutcome.AGREED]
            handle = await h.start(centre_policy(1), INTAKE)
            await h.skip_to(datetime(2027, 3, 22, 8, 5, tzinfo=MSK))  # −29: the robot has called
            await gateway.drain_callbacks()
            await h.skip_to(AFTER_MINUS_29)
            status = await handle.query(RenewalJourney.status)
    await db.dispose()
    robot = [(e.status.value, e.reason) for e in status.timeline if e.channel is Channel.ROBOT_CALL]
    assert robot == [("sent", "outcome: agreed")]  # not the "no_answer" of a callback that never came
    assert status.stage.value == "operator"

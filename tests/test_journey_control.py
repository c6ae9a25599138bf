"""Driving one journey by hand: queries, duplicate starts, webhook-style robot outcomes, operator
updates with validation, policy changes, the agent portal check, and exactly-once sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError

from renewals.activity_io import SendRequest
from renewals.channels.base import Channels, SingleProvider
from renewals.channels.errors import ChannelPaused
from renewals.channels.recording import DatabasePortal, RecordingMessages, ScriptedRobot
from renewals.db.database import Database
from renewals.db.tables import (
    ChannelPauseRow,
    OperatorTaskRow,
    OutboxRow,
    PortalRenewalRow,
    SandboxMessageRow,
)
from renewals.journey_api import (
    EventType,
    JourneyEvent,
    OperatorOutcome,
    OperatorOutcomeReport,
    RobotOutcome,
    RobotOutcomeReport,
    Stage,
)
from renewals.models import Channel
from renewals.sendwindow import zone
from tests.factories import policy
from tests.harness import journey_harness
from workflows.renewal import RenewalJourney

MSK = zone("Europe/Moscow")
INTAKE = datetime(2027, 3, 1, 10, tzinfo=MSK)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment in March/April 2027 in Moscow: `day` of the month from 1 March, so 32 = 1 April."""
    month, dom = (3, day) if day <= 31 else (4, day - 31)
    return datetime(2027, month, dom, hour, minute, tzinfo=MSK)


async def test_status_query_shows_stage_next_touchpoint_and_timeline(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        handle = await h.start(policy("KASKO", number="Q-1"), INTAKE)
        status = await handle.query(RenewalJourney.status)
        assert status.stage is Stage.SCHEDULED and status.timeline == []
        assert status.next is not None
        assert (status.next.touchpoint, status.next.due_at) == ("d-45-sms", at(6, 9))

        await h.skip_to(at(7))
        status = await handle.query(RenewalJourney.status)
        assert status.stage is Stage.INFORMING
        assert [(e.touchpoint, e.status.value) for e in status.timeline] == [("d-45-sms", "sent")]
        assert status.next is not None and status.next.touchpoint == "d-5-sms"
        assert status.next.due_at == datetime(2027, 4, 15, 8, tzinfo=MSK)


async def test_a_duplicate_start_never_creates_a_second_journey(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        p = policy("KASKO", number="DUP 1/2")
        handle = await h.start(p, INTAKE)
        assert handle.id == "renewal-DUP1-2-20270420"
        with pytest.raises(WorkflowAlreadyStartedError):
            await h.start(p, INTAKE)


class WebhookRobot(SingleProvider):
    """A robot provider whose outcome arrives later by webhook, like the real one."""

    name = "webhook-robot"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def send(self, request: SendRequest) -> str:
        self.calls.append(request.touchpoint)
        return f"call-{request.touchpoint}"


async def test_robot_outcome_by_signal_and_no_answer_when_none_comes(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/robot.db")
    robot = WebhookRobot()
    messages = RecordingMessages(db)
    channels = Channels(
        {Channel.SMS: messages, Channel.EMAIL: messages, Channel.VK: messages, Channel.ROBOT_CALL: robot},
        DatabasePortal(db),
    )
    async with journey_harness(tmp_path, channels, db) as h:
        handle = await h.start(policy("KASKO", number="R-1", renewal_centre=True), INTAKE)
        await h.skip_to(at(23, 12))  # day −28: the −29 call got no outcome by 22:00, −28 is waiting
        await handle.signal(RenewalJourney.on_robot_outcome, RobotOutcomeReport(outcome=RobotOutcome.AGREED))
        await h.skip_to(at(23, 13))
        status = await handle.query(RenewalJourney.status)
        robot_rows = [(e.day, e.reason) for e in status.timeline if e.channel is Channel.ROBOT_CALL]
        assert robot_rows == [(-29, "outcome: no_answer"), (-28, "outcome: agreed")]
        assert status.stage is Stage.OPERATOR
        assert robot.calls == ["d-29-robot_call", "d-28-robot_call"]
    await db.dispose()


async def test_operator_outcome_update_is_validated_and_applied(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        handle = await h.start(policy("KASKO", number="OP-1", renewal_centre=True), INTAKE)
        await h.skip_to(at(34, 10))  # 3 April, day −17: the operator task is open
        async with h.db.session() as session:
            task = (await session.execute(select(OperatorTaskRow))).scalar_one()
        assert (task.centre_id, task.status) == ("msk", "open")

        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update(
                RenewalJourney.on_operator_outcome,
                OperatorOutcomeReport(task_id="999", outcome=OperatorOutcome.REFUSED),
            )
        assert "does not belong to journey" in str(unknown.value.cause)

        report = OperatorOutcomeReport(task_id=str(task.id), outcome=OperatorOutcome.REACHED_RENEWING)
        status = await handle.execute_update(RenewalJourney.on_operator_outcome, report)
        assert status.stage is Stage.OPERATOR
        with pytest.raises(WorkflowUpdateFailedError) as closed:
            await handle.execute_update(RenewalJourney.on_operator_outcome, report)
        assert "already closed" in str(closed.value.cause)
        final = await handle.result()
        assert final.stage is Stage.LAPSED  # reached and renewing, but no payment ever came


async def test_operator_refusal_ends_the_journey(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        handle = await h.start(policy("KASKO", number="OP-2", renewal_centre=True), INTAKE)
        await h.skip_to(at(34, 10))
        async with h.db.session() as session:
            task_id = (await session.execute(select(OperatorTaskRow.id))).scalar_one()
        await handle.execute_update(
            RenewalJourney.on_operator_outcome,
            OperatorOutcomeReport(task_id=str(task_id), outcome=OperatorOutcome.REFUSED),
        )
        final = await handle.result()
        assert final.stage is Stage.REFUSED
        assert max(e.day for e in final.timeline) == -17  # nothing after the refusal, no −5 SMS


async def test_policy_update_reaches_the_running_journey(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        original = policy("KASKO", number="UPD-1")
        handle = await h.start(original, INTAKE)
        changed = policy("KASKO", number="UPD-1", client={"phone": "+79167654321"})
        await handle.execute_update(RenewalJourney.on_policy_update, changed)
        with pytest.raises(WorkflowUpdateFailedError) as wrong:
            await handle.execute_update(RenewalJourney.on_policy_update, policy("KASKO", number="OTHER"))
        assert "does not match" in str(wrong.value.cause)
        await h.skip_to(at(7))
        status = await handle.query(RenewalJourney.status)
        assert status.timeline[0].to == "+79167654321"


@pytest.mark.parametrize(
    ("portal", "stage", "last_reason"),
    [
        ({"paid": True}, Stage.PAID, None),
        ({"draft": True}, Stage.LAPSED, "draft_exists"),
        ({"quote": True}, Stage.LAPSED, "quote_exists"),
    ],
)
async def test_minus_5_asks_the_agent_portal_first(
    tmp_path: Path, portal: dict[str, bool], stage: Stage, last_reason: str | None
) -> None:
    async with journey_harness(tmp_path) as h:
        p = policy("KASKO", number="PORTAL-1")
        handle = await h.start(p, INTAKE)
        async with h.db.session() as session, session.begin():
            session.add(
                PortalRenewalRow(
                    policy_number=p.number, expires_on=p.expires_on, updated_at=datetime.now(UTC), **portal
                )
            )
        final = await handle.result()
        assert final.stage is stage
        entries = [(e.day, e.status.value, e.reason) for e in final.timeline]
        if last_reason is None:  # paid: nothing goes out at −5 and the journey is over
            assert entries == [(-45, "sent", None), (-5, "suppressed", "payment_received")]
        else:
            assert entries[-1] == (-5, "suppressed", last_reason)


class AcceptThenCrash(SingleProvider):
    """Delivers to the sandbox, then fails as if the worker died before recording it — twice."""

    name = "sandbox"

    def __init__(self, inner: RecordingMessages) -> None:
        self.inner = inner
        self.crashes = 0

    async def send(self, request: SendRequest) -> str:
        message_id = await self.inner.send(request)
        if self.crashes < 2:
            self.crashes += 1
            raise ConnectionResetError("worker lost its connection after the provider accepted")
        return message_id


async def test_a_retry_after_the_provider_accepted_sends_nothing_twice(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/crash.db")
    flaky = AcceptThenCrash(RecordingMessages(db))
    channels = Channels(
        {Channel.SMS: flaky, Channel.EMAIL: flaky, Channel.VK: flaky, Channel.ROBOT_CALL: ScriptedRobot(db)},
        DatabasePortal(db),
    )
    async with journey_harness(tmp_path, channels, db) as h:
        handle = await h.start(policy("KASKO", number="CRASH-1"), INTAKE)
        final = await handle.result()
    assert flaky.crashes == 2
    assert [(e.day, e.status.value) for e in final.timeline] == [(-45, "sent"), (-5, "sent")]
    async with db.session() as session:
        accepted = (await session.execute(select(func.count()).select_from(SandboxMessageRow))).scalar_one()
        outbox = (await session.execute(select(OutboxRow.status))).scalars().all()
    assert accepted == 2 and sorted(outbox) == ["sent", "sent"]
    await db.dispose()


async def test_outbox_is_the_audit_of_every_decision(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        p = policy("OSAGO", number="AUDIT-1", first_prolongation_year=False)
        handle = await h.start(p, INTAKE)
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.DRAFT_CREATED))
        final = await handle.result()
        async with h.db.session() as session:
            rows = (await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    assert [(r.touchpoint, r.status, r.reason) for r in rows] == [
        ("d-30-sms", "suppressed", "not_first_prolongation_year"),
        ("d-5-sms", "suppressed", "draft_exists"),
    ]
    assert final.events[0].type == "draft_created"


async def test_an_opt_out_in_one_journey_silences_the_clients_other_journeys(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        kasko = await h.start(policy("KASKO", number="OPT-1"), INTAKE)
        osago = await h.start(policy("OSAGO", number="OPT-2", first_prolongation_year=True), INTAKE)
        await kasko.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.OPT_OUT, source="sms STOP"))
        assert (await kasko.result()).stage is Stage.OPTED_OUT
        final = await osago.result()
    assert final.stage is Stage.OPTED_OUT
    assert [(e.day, e.status.value) for e in final.timeline] == [(-30, "suppressed")]
    assert (final.timeline[0].reason or "").startswith("OptedOut: opt_out (sms STOP)")


class PausedOnce(SingleProvider):
    """A provider that first refuses our account (no funds), then works."""

    name = "sandbox"

    def __init__(self, inner: RecordingMessages) -> None:
        self.inner = inner
        self.refusals = 0

    async def send(self, request: SendRequest) -> str:
        if self.refusals == 0:
            self.refusals += 1
            raise ChannelPaused("InsufficientFunds", "smsc: error_code 3 (no money)", "smsc")
        return await self.inner.send(request)


async def test_insufficient_funds_pauses_the_channel_and_the_send_waits(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/pause.db")
    provider = PausedOnce(RecordingMessages(db))
    channels = Channels(
        {
            Channel.SMS: provider,
            Channel.EMAIL: provider,
            Channel.VK: provider,
            Channel.ROBOT_CALL: ScriptedRobot(db),
        },
        DatabasePortal(db),
    )
    async with journey_harness(tmp_path, channels, db) as h:
        handle = await h.start(policy("KASKO", number="PAUSE-1"), INTAKE)
        await h.skip_to(at(6, 12))
        status = await handle.query(RenewalJourney.status)
    async with db.session() as session:
        pause = (await session.execute(select(ChannelPauseRow))).scalar_one()
    await db.dispose()
    assert (pause.channel, pause.reason) == ("sms", "InsufficientFunds: smsc: error_code 3 (no money)")
    sent = status.timeline[0]
    assert sent.status.value == "sent" and provider.refusals == 1
    waited = sent.at - at(6, 9)
    assert timedelta(minutes=14) < waited < timedelta(minutes=20)  # paused 15 minutes, not failed


async def test_sends_run_on_their_channels_task_queue(tmp_path: Path) -> None:
    seen: list[str] = []

    class QueueSpy(SingleProvider):
        name = "spy"

        async def send(self, request: SendRequest) -> str:
            seen.append(f"{request.channel.value}@{activity.info().task_queue}")
            return "m-1"

    db = Database(f"sqlite+aiosqlite:///{tmp_path}/queues.db")
    spy = QueueSpy()
    channels = Channels(
        {Channel.SMS: spy, Channel.EMAIL: spy, Channel.VK: spy, Channel.ROBOT_CALL: ScriptedRobot(db)},
        DatabasePortal(db),
    )
    async with journey_harness(tmp_path, channels, db) as h:
        handle = await h.start(policy("KASKO", number="Q-2", renewal_centre=True), INTAKE)
        await h.skip_to(at(21, 12))
        await handle.query(RenewalJourney.status)
    await db.dispose()
    # the day's three sends go out together, each on its channel's queue
    assert sorted(seen) == ["email@test-journeys-email", "sms@test-journeys-sms", "vk@test-journeys-vk"]

"""What a journey does when it ends while a send still waits, and what operators see of it: a payment or
an opt-out cancels a retrying send; a suppressed touchpoint does not move the stage; a failed send is
findable (`SendFailed`); an operator's callback keeps the task open; the morning's sends spread out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from renewals import search_attributes as sa
from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.errors import ProviderUnavailable
from renewals.db.database import Database
from renewals.db.tables import OperatorTaskRow, OutboxRow
from renewals.journey_api import (
    EventType,
    JourneyEvent,
    JourneyInput,
    OperatorOutcome,
    OperatorOutcomeReport,
    Stage,
)
from renewals.models import journey_id
from renewals.sendwindow import SendWindow
from tests.factories import policy
from tests.harness import INTAKE, MSK, TASK_QUEUE, channels_with, journey_harness, msk
from tests.keys import TEST_CONVERTER
from workflows.renewal import RenewalJourney


class SmsDown(SingleProvider):
    """An SMS provider that never takes a message (5xx that proves it has nothing)."""

    name = "down"

    def __init__(self) -> None:
        self.attempts = 0

    async def send(self, request: SendRequest) -> str:
        self.attempts += 1
        raise ProviderUnavailable("503 Service Unavailable", provider="down")


class SmsRefuses(SingleProvider):
    name = "refuses"

    async def send(self, request: SendRequest) -> str:
        raise PermanentSendError("InvalidPhone", "the number does not exist")


@pytest.mark.parametrize(
    ("event", "stage"), [(EventType.PAYMENT_RECEIVED, Stage.PAID), (EventType.OPT_OUT, Stage.OPTED_OUT)]
)
async def test_a_send_still_retrying_is_cancelled_when_the_journey_ends(
    tmp_path: Path, event: EventType, stage: Stage
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/retrying.db")
    sms = SmsDown()
    async with journey_harness(tmp_path, channels_with(db, sms=sms), db) as h:
        handle = await h.start(policy("KASKO", number="RETRY-1"), INTAKE)
        await h.skip_to(msk(3, 6, 12))  # −45 was due at 09:00 (Saturday): retrying since
        attempts = sms.attempts
        assert attempts > 1
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=event, source="test"))
        final = await handle.result()
        async with db.session() as session:
            row = (await session.execute(select(OutboxRow))).scalar_one()
    await db.dispose()
    assert final.stage is stage
    entry = final.timeline[0]
    assert (entry.touchpoint, entry.status.value, entry.reason) == (
        "d-45-sms",
        "suppressed",
        f"journey_finished ({stage.value})",
    )
    assert sms.attempts == attempts  # no attempt after the journey ended
    assert (row.status, row.reason) == ("suppressed", f"journey_finished ({stage.value})")


async def test_a_suppressed_touchpoint_does_not_move_the_stage(tmp_path: Path) -> None:
    gated = policy("KASKO", number="GATED-1", agent={"renewal_rates": {"KASKO": 0.9, "OSAGO": 0.9}})
    async with journey_harness(tmp_path) as h:
        handle = await h.start(gated, INTAKE)
        await h.skip_to(msk(3, 7))  # −45 suppressed by the gate
        status = await handle.query(RenewalJourney.status)
    assert [(e.touchpoint, e.status.value) for e in status.timeline] == [("d-45-sms", "suppressed")]
    assert status.stage is Stage.SCHEDULED


async def test_a_failed_send_makes_the_journey_findable(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/failed.db")
    async with journey_harness(tmp_path, channels_with(db, sms=SmsRefuses()), db) as h:
        handle = await h.start(policy("KASKO", number="FAIL-1"), INTAKE)
        before = (await handle.describe()).typed_search_attributes.get(sa.SEND_FAILED)
        await h.skip_to(msk(3, 7))
        status = await handle.query(RenewalJourney.status)
        after = (await handle.describe()).typed_search_attributes.get(sa.SEND_FAILED)
    await db.dispose()
    assert status.timeline[0].status.value == "failed"
    assert (before, after) == (None, True)


async def test_an_operator_callback_keeps_the_task_open_for_the_real_outcome(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        handle = await h.start(policy("KASKO", number="CALLBACK-1", renewal_centre=True), INTAKE)
        await h.skip_to(msk(4, 3, 10))  # −17: the operator task is open
        async with h.db.session() as session:
            task = (await session.execute(select(OperatorTaskRow))).scalar_one()
        callback = OperatorOutcomeReport(
            task_id=str(task.id), outcome=OperatorOutcome.CALLBACK, note="в 18:00"
        )
        await handle.execute_update(RenewalJourney.on_operator_outcome, callback)
        reached = OperatorOutcomeReport(task_id=str(task.id), outcome=OperatorOutcome.REACHED_RENEWING)
        status = await handle.execute_update(RenewalJourney.on_operator_outcome, reached)
    outcomes = [e.type for e in status.events if e.type.startswith("operator_outcome")]
    assert outcomes == ["operator_outcome: callback", "operator_outcome: reached_renewing"]


def test_the_spread_moves_only_sends_due_at_the_opening() -> None:
    window = SendWindow(spread_minutes=60)
    key = journey_id("ХХХ 0123456789", msk(4, 20).date())
    offset = window.spread_offset(key)
    assert offset == window.spread_offset(key) and offset.total_seconds() < 3600
    assert len({window.spread_offset(f"renewal-{i}") for i in range(50)}) > 40  # keys spread out
    saturday = msk(3, 6).date()
    assert window.due_moment(saturday, msk(3, 1), MSK, key) == msk(3, 6, 9) + offset
    assert window.due_moment(saturday, msk(3, 6, 15), MSK, key) == msk(3, 6, 15)  # mid-window: now
    assert window.due_moment(saturday, msk(3, 1), MSK) == msk(3, 6, 9)  # no key: no spread
    short = SendWindow(
        spread_minutes=240, non_working_start=msk(1, 1, 9).time(), non_working_end=msk(1, 1, 10).time()
    )
    assert short.due_moment(saturday, msk(3, 1), MSK, key) <= msk(3, 6, 9, 59)  # never past the close
    assert SendWindow().due_moment(saturday, msk(3, 1), MSK, key) == msk(3, 6, 9)


async def test_a_journey_sends_at_its_own_offset_into_the_window(tmp_path: Path) -> None:
    window = SendWindow(spread_minutes=45)
    kasko = policy("KASKO", number="SPREAD-1")
    workflow_id = journey_id(kasko.number, kasko.expires_on)
    async with journey_harness(tmp_path) as h:
        await h.skip_to(INTAKE)
        handle = await h.env.client.start_workflow(
            RenewalJourney.run,
            JourneyInput(policy=kasko, window=window),
            id=workflow_id,
            task_queue=TASK_QUEUE,
        )
        await h.skip_to(msk(3, 7))
        status = await handle.query(RenewalJourney.status)
        history = await handle.fetch_history()
    sent = status.timeline[0]
    assert sent.touchpoint == "d-45-sms"
    due = msk(3, 6, 9) + window.spread_offset(workflow_id)
    assert abs((sent.at - due).total_seconds()) < 5  # the timer's moment, plus the send itself
    # the send carries that moment: the worker's lateness metric is measured from it
    [scheduled] = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "send"
    ]
    [request] = await TEST_CONVERTER.decode(scheduled.input.payloads, [SendRequest])
    assert request.due_at == due


class HeldThenRefused(SingleProvider):
    """An SMS provider whose first attempt is still at the provider when the client pays, and then
    fails: the journey had ended and nothing went out, so it is no failure of the journey's."""

    name = "held"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, request: SendRequest) -> str:
        self.started.set()
        await self.release.wait()
        raise PermanentSendError("InvalidPhone", "the number does not exist")


async def test_an_attempt_in_flight_that_fails_after_the_end_is_not_a_failure(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/held.db")
    sms = HeldThenRefused()
    async with journey_harness(tmp_path, channels_with(db, sms=sms), db) as h:
        handle = await h.start(policy("KASKO", number="HELD-1"), INTAKE)
        skipping = asyncio.create_task(h.skip_to(msk(3, 6, 9, 5)))  # −45 goes out at 09:00
        await asyncio.wait_for(sms.started.wait(), 60)
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.PAYMENT_RECEIVED))
        for _ in range(200):  # the attempt fails only once the journey has asked to cancel it
            events = (await handle.fetch_history()).events
            if any(e.HasField("activity_task_cancel_requested_event_attributes") for e in events):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the journey never cancelled the send in flight")
        sms.release.set()
        final = await handle.result()
        await skipping
        failed = (await handle.describe()).typed_search_attributes.get(sa.SEND_FAILED)
    await db.dispose()
    entry = final.timeline[0]
    assert final.stage is Stage.PAID
    assert (entry.status.value, entry.reason) == ("suppressed", "journey_finished (paid)")
    assert failed is None

"""The edges a reviewer found: late robot outcomes, sends near the window's close, late intake in the
robot period and after −17, robot and portal outages, bad data in texts, and policy updates that
would change the plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError

from renewals.activity_io import PortalQuery, PortalStatus, SendRequest
from renewals.channels.base import SingleProvider
from renewals.channels.errors import ChannelPaused, ProviderUnavailable
from renewals.channels.recording import RecordingMessages
from renewals.db.database import Database
from renewals.journey_api import RobotOutcome, RobotOutcomeReport, Stage
from renewals.models import Channel
from renewals.templates import NdaViolation, render
from tests.factories import policy
from tests.harness import INTAKE, MSK, channels_with, journey_harness, msk
from workflows.renewal import RenewalJourney


class WebhookRobot(SingleProvider):
    """Outcomes come later by webhook; optionally the provider is down on some days."""

    name = "webhook-robot"

    def __init__(self, down_on: tuple[str, ...] = ()) -> None:
        self.calls: list[str] = []
        self.down_on = down_on

    async def send(self, request: SendRequest) -> str:
        if request.touchpoint in self.down_on:
            raise ProviderUnavailable("robot: HTTP 503", provider="robot")
        self.calls.append(request.touchpoint)
        return f"call-{request.touchpoint}"


@pytest.mark.parametrize(
    ("outcome", "stage", "calls"),
    [(RobotOutcome.AGREED, Stage.OPERATOR, 1), (RobotOutcome.DO_NOT_CONTACT, Stage.OPTED_OUT, 1)],
)
async def test_a_robot_outcome_after_the_calling_hours_still_counts(
    tmp_path: Path, outcome: RobotOutcome, stage: Stage, calls: int
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/late.db")
    robot = WebhookRobot()
    async with journey_harness(tmp_path, channels_with(db, robot=robot), db) as h:
        handle = await h.start(policy("KASKO", number="LATE-1", renewal_centre=True), INTAKE)
        await h.skip_to(msk(3, 22, 22, 5))  # −29: the call at 08:00 got no outcome by 22:00
        report = RobotOutcomeReport(outcome=outcome, task_id="call-d-29-robot_call")
        await handle.signal(RenewalJourney.on_robot_outcome, report)
        await h.skip_to(msk(3, 26))
        status = await handle.query(RenewalJourney.status)
    await db.dispose()
    assert robot.calls == ["d-29-robot_call"][:calls]
    assert status.stage is stage
    if stage is Stage.OPERATOR:
        handoff = status.timeline[-1]
        assert (handoff.channel, handoff.status.value, handoff.day) == (Channel.OPERATOR_TASK, "sent", -29)
        assert handoff.reason == "отклик на звонок Робота Даши: agreed"


class PausedOnce(SingleProvider):
    name = "sandbox"

    def __init__(self, inner: RecordingMessages) -> None:
        self.inner = inner
        self.refused = False

    async def send(self, request: SendRequest) -> str:
        if not self.refused:
            self.refused = True
            raise ChannelPaused("InsufficientFunds", "no money", "smsc")
        return await self.inner.send(request)


async def test_a_send_held_past_the_windows_close_waits_for_the_next_opening(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/close.db")
    sms = PausedOnce(RecordingMessages(db))
    async with journey_harness(tmp_path, channels_with(db, sms=sms), db) as h:
        # Sat 06.03 is −45; taken in at 19:55, five minutes before the weekend window closes
        handle = await h.start(policy("KASKO", number="CLOSE-1"), msk(3, 6, 19, 55))
        await h.skip_to(msk(3, 8))
        status = await handle.query(RenewalJourney.status)
    await db.dispose()
    sent = status.timeline[0]
    assert sent.status.value == "sent"
    local = sent.at.astimezone(MSK)
    assert (local.date().isoformat(), local.hour, sent.day) == ("2027-03-07", 9, -44)  # Sunday's opening


async def test_late_intake_after_the_calling_hours_never_doubles_a_robot_call(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        # Fri 26.03 is −25; taken in at 22:30, after that day's calling hours
        handle = await h.start(policy("KASKO", number="ROBOT-LATE", renewal_centre=True), msk(3, 26, 22, 30))
        await h.skip_to(msk(4, 3, 8))
        status = await handle.query(RenewalJourney.status)
    robot = [
        (e.touchpoint, e.status.value, e.reason) for e in status.timeline if e.channel is Channel.ROBOT_CALL
    ]
    assert robot[:2] == [
        ("d-29-robot_call", "suppressed", "day_passed_before_intake"),
        ("d-25-robot_call", "suppressed", "calling_window_closed"),
    ]
    calls = [key for key, state, _ in robot if state == "sent"]
    assert calls == [f"d{day}-robot_call" for day in range(-24, -17)]  # one a day, none on −17
    called_on = [e.at.astimezone(MSK).date() for e in status.timeline if e.channel is Channel.ROBOT_CALL][2:]
    assert len(set(called_on)) == len(called_on)


async def test_a_renewal_centre_client_taken_in_after_minus_17_still_gets_an_operator(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        handle = await h.start(policy("KASKO", number="OP-LATE", renewal_centre=True), msk(4, 10, 12))
        await h.skip_to(msk(4, 10, 13))
        status = await handle.query(RenewalJourney.status)
    operator = [e for e in status.timeline if e.channel is Channel.OPERATOR_TASK]
    assert [(e.day, e.status.value) for e in operator] == [(-10, "sent")]
    assert status.stage is Stage.OPERATOR


async def test_a_robot_outage_fails_that_day_only(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/outage.db")
    robot = WebhookRobot(down_on=("d-29-robot_call",))
    async with journey_harness(tmp_path, channels_with(db, robot=robot), db) as h:
        handle = await h.start(policy("KASKO", number="ROBOT-DOWN", renewal_centre=True), INTAKE)
        await h.skip_to(msk(3, 24, 23))
        status = await handle.query(RenewalJourney.status)
    await db.dispose()
    robot_rows = [(e.day, e.status.value) for e in status.timeline if e.channel is Channel.ROBOT_CALL]
    assert robot_rows == [(-29, "failed"), (-28, "sent"), (-27, "sent")]


class BrokenPortal:
    async def renewal_status(self, query: PortalQuery) -> PortalStatus:
        raise ConnectionError("portal down")


async def test_portal_outage_does_not_hold_back_the_minus_5_sms(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/portal.db")
    async with journey_harness(tmp_path, channels_with(db, portal=BrokenPortal()), db) as h:
        handle = await h.start(policy("KASKO", number="PORTAL-DOWN"), INTAKE)
        final = await handle.result()
    await db.dispose()
    last = final.timeline[-1]
    assert (last.day, last.status.value, last.template) == (-5, "sent", "base_kasko_5")
    assert last.at.astimezone(MSK).date().isoformat() == "2027-04-15"  # same day, not after the window
    assert any(e.type == "portal_unavailable" for e in final.events)


async def test_a_text_the_nda_forbids_is_never_sent(tmp_path: Path) -> None:
    bad = policy("KASKO", number="NDA-1", renewal_centre=True, agent={"name": "Анна, офис на Тверской"})
    with pytest.raises(NdaViolation, match="an office"):
        render("centre_email_30", bad)
    async with journey_harness(tmp_path) as h:
        handle = await h.start(bad, INTAKE)
        await h.skip_to(msk(3, 21, 12))
        status = await handle.query(RenewalJourney.status)
    first_day = {e.template: (e.status.value, (e.reason or "").split(":")[0]) for e in status.timeline}
    assert first_day == {  # the e-mail names the agent, so it is refused; SMS and VK carry on
        "centre_email_30": ("failed", "TemplateError"),
        "centre_vk_30": ("sent", ""),
        "centre_sms_30": ("sent", ""),
    }


def test_company_phones_in_texts_must_be_real_numbers() -> None:
    with pytest.raises(ValidationError, match=r"agent\.phone"):
        policy("KASKO", agent={"phone": "abc"})
    with pytest.raises(ValidationError, match=r"regional_centre\.phone"):
        policy("KASKO", regional_centre={"id": "msk", "name": "Москва", "phone": "12"})
    assert policy("KASKO", agent={"phone": "8 (903) 111-22-33"}).agent.phone == "+79031112233"


def test_names_are_trimmed_and_an_empty_patronymic_is_none() -> None:
    client = policy("KASKO", client={"first_name": " Иван ", "patronymic": "  "}).client
    assert (client.first_name, client.patronymic, client.io) == ("Иван", None, "Иван")


async def test_a_policy_update_that_would_change_the_plan_is_refused(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        handle = await h.start(policy("OSAGO", number="PLAN-1"), INTAKE)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                RenewalJourney.on_policy_update,
                policy("OSAGO", number="PLAN-1", first_prolongation_year=True, renewal_centre=True),
            )
    assert "renewal_centre, first_prolongation_year cannot change" in str(refused.value.cause)


@pytest.mark.parametrize("task_id", ["someone-elses-task", None])
async def test_a_robot_outcome_for_a_call_the_journey_never_placed_changes_nothing(
    tmp_path: Path, task_id: str | None
) -> None:
    """A signed callback naming a task this journey never placed (or none, before any call) must not
    stop Робот Даша or open an operator task."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/foreign.db")
    robot = WebhookRobot()
    async with journey_harness(tmp_path, channels_with(db, robot=robot), db) as h:
        handle = await h.start(policy("KASKO", number="FOREIGN-1", renewal_centre=True), INTAKE)
        await h.skip_to(msk(3, 20, 12))  # day −31: no call placed yet
        report = RobotOutcomeReport(outcome=RobotOutcome.AGREED, task_id=task_id)
        await handle.signal(RenewalJourney.on_robot_outcome, report)
        await h.skip_to(msk(3, 24, 23))  # −27 evening: the −29, −28 and −27 calls were placed
        status = await handle.query(RenewalJourney.status)
    await db.dispose()
    assert robot.calls == ["d-29-robot_call", "d-28-robot_call", "d-27-robot_call"]
    assert status.stage is Stage.ROBOT_CALLING
    assert not [e for e in status.timeline if e.channel is Channel.OPERATOR_TASK]

"""A held-out touchpoint is never sent and is recorded `suppressed: holdout (<experiment>)`; the gate
still wins; everything else runs as usual; journeys started through intake carry their arm in their
input (so a replay never changes it) and record it. (Assignment and the report: test_experiments.py.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select
from temporalio.worker import Replayer

from renewals.db.tables import OutboxRow
from renewals.db.tables_experiments import ExperimentArmRow
from renewals.experiments.assignment import Arm, arm_of
from renewals.experiments.config import Experiment
from renewals.intake.journey_sync import start_due_journeys
from renewals.intake.portfolio_store import upsert_policy
from renewals.intake.start_plan import StartPlan
from renewals.journey_api import Holdout, JourneyInput, Stage
from renewals.models import Policy, journey_id
from renewals.sendwindow import SendWindow
from tests.factories import policy
from tests.harness import INTAKE, TASK_QUEUE, Harness, journey_harness, msk
from tests.keys import TEST_CONVERTER
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER

BASE_EARLY = Holdout(experiment="base-sms", templates=("base_kasko_45", "base_osago_30"))


async def _outbox(h: Harness, workflow_id: str) -> list[tuple[str, str, str | None]]:
    async with h.db.session() as session:
        rows = (await session.execute(select(OutboxRow).where(OutboxRow.journey_id == workflow_id))).scalars()
        return sorted((row.touchpoint, row.status, row.reason) for row in rows)


async def test_a_held_out_touchpoint_is_recorded_and_never_sent(tmp_path: Path) -> None:
    held = policy("KASKO", number="HOLD-1")
    async with journey_harness(tmp_path) as h:
        await h.skip_to(INTAKE)
        handle = await h.env.client.start_workflow(
            RenewalJourney.run,
            JourneyInput(policy=held, holdouts=(BASE_EARLY,)),
            id=journey_id(held.number, held.expires_on),
            task_queue=TASK_QUEUE,
        )
        await h.skip_to(msk(4, 16))  # past −45 and −5
        status = await handle.query(RenewalJourney.status)
        sends = await _outbox(h, handle.id)
    timeline = [(e.touchpoint, e.status.value, e.reason) for e in status.timeline]
    assert timeline == [
        ("d-45-sms", "suppressed", "holdout (base-sms)"),
        ("d-5-sms", "sent", None),  # not held out: runs as usual
    ]
    assert sends == [("d-45-sms", "suppressed", "holdout (base-sms)"), ("d-5-sms", "sent", None)]
    assert status.stage is Stage.FINAL_REMINDER


async def test_the_gate_still_wins_over_a_holdout(tmp_path: Path) -> None:
    gated = policy("KASKO", number="HOLD-GATED", agent={"renewal_rates": {"KASKO": 0.9, "OSAGO": 0.9}})
    async with journey_harness(tmp_path) as h:
        await h.skip_to(INTAKE)
        handle = await h.env.client.start_workflow(
            RenewalJourney.run,
            JourneyInput(policy=gated, holdouts=(BASE_EARLY,)),
            id=journey_id(gated.number, gated.expires_on),
            task_queue=TASK_QUEUE,
        )
        await h.skip_to(msk(3, 7))
        status = await handle.query(RenewalJourney.status)
    [entry] = status.timeline
    assert entry.status.value == "suppressed" and (entry.reason or "").startswith("agent_meets_renewal_norms")


def _clients(n: int) -> list[Policy]:
    return [
        policy("KASKO", number=f"7100K/046/{i:06d}/27", client={"phone": f"+7916{i:07d}"}) for i in range(n)
    ]


async def test_intake_gives_each_journey_its_arm_records_it_and_replays_the_same(tmp_path: Path) -> None:
    experiment = Experiment(
        name="base-sms", hold_out=("base_sms_early",), share=0.5, starts_on=date(2027, 1, 1),
        ends_on=date(2027, 12, 31),
    )  # fmt: skip
    policies = _clients(12)
    arms = {p.number: arm_of(experiment, p) for p in policies}
    assert set(arms.values()) == {Arm.HOLDOUT, Arm.TREATMENT}  # both arms among these clients
    async with journey_harness(tmp_path) as h:
        for p in policies:
            await upsert_policy(h.db, p)
        await h.skip_to(INTAKE)
        today = INTAKE.date()
        plan = await StartPlan.prepare(h.db, today, [experiment])
        summary = await start_due_journeys(h.env.client, h.db, today, 60, TASK_QUEUE, SendWindow(), plan=plan)
        assert summary.counts == {"started": 12}
        await h.skip_to(msk(3, 7))  # −45
        timelines = {}
        for p in policies:
            handle = h.env.client.get_workflow_handle(journey_id(p.number, p.expires_on))
            timelines[p.number] = (await handle.query(RenewalJourney.status)).timeline[0]
        held_number = next(number for number, arm in arms.items() if arm is Arm.HOLDOUT)
        history = await h.env.client.get_workflow_handle(
            journey_id(held_number, policies[0].expires_on)
        ).fetch_history()
        async with h.db.session() as session:
            recorded = {
                row.policy_number: row.arm for row in (await session.scalars(select(ExperimentArmRow)))
            }
    for number, arm in arms.items():
        entry = timelines[number]
        if arm is Arm.HOLDOUT:
            assert (entry.status.value, entry.reason) == ("suppressed", "holdout (base-sms)"), number
        else:
            assert entry.status.value == "sent", number
    assert recorded == {number: arm.value for number, arm in arms.items()}  # both arms, each once
    replayer = Replayer(
        workflows=[RenewalJourney], workflow_runner=SANDBOXED_RUNNER, data_converter=TEST_CONVERTER
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None

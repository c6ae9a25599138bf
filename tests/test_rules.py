"""The rules table gives each product exactly the seed's touchpoints; the gate follows the norms."""

from __future__ import annotations

import dataclasses

import pytest

from renewals.journey_api import EventType, RobotOutcome, Stage
from renewals.models import Channel, Line
from renewals.rules import (
    Condition,
    Facts,
    LateIntake,
    Segment,
    gate_reason,
    late_intake,
    policy_update_problem,
    robot_handoff,
    robot_series_stops,
    segment_of,
    stage_after,
    touchpoints_for,
    unmet,
)
from tests.factories import policy


def plan(**kwargs: object) -> list[tuple[int, str, str]]:
    return [(tp.day, tp.rule.channel.value, tp.rule.template) for tp in touchpoints_for(policy(**kwargs))]


@pytest.mark.parametrize("product", ["KASKO", "KASKO_OSAGO"])
def test_base_kasko_gets_minus_45_and_conditional_minus_5(product: str) -> None:
    assert plan(product=product) == [(-45, "sms", "base_kasko_45"), (-5, "sms", "base_kasko_5")]


def test_base_standalone_osago_gets_minus_30_and_minus_5() -> None:
    assert plan(product="OSAGO") == [(-30, "sms", "base_osago_30"), (-5, "sms", "base_osago_5")]


@pytest.mark.parametrize(("code", "expected"), [("305", True), ("354", True), ("306", False)])
def test_ifl_only_products_305_and_354(code: str, expected: bool) -> None:
    assert plan(product="IFL", product_code=code) == ([(-30, "sms", "base_ifl_30")] if expected else [])


def test_mortgage_by_bank() -> None:
    assert plan(product="MORTGAGE", bank="SBER") == [
        (-45, "sms", "base_mortgage_sber_45"),
        (-5, "sms", "base_mortgage_5"),
    ]
    assert plan(product="MORTGAGE", bank="OTHER") == [
        (-30, "sms", "base_mortgage_30"),
        (-5, "sms", "base_mortgage_5"),
    ]


@pytest.mark.parametrize("product", ["KASKO", "KASKO_OSAGO", "OSAGO"])
def test_renewal_centre_journey_replaces_base_informing(product: str) -> None:
    robot_days = [(day, "robot_call", "robot_dasha") for day in range(-29, -17)]
    assert plan(product=product, renewal_centre=True) == [
        (-30, "email", "centre_email_30"),
        (-30, "vk", "centre_vk_30"),
        (-30, "sms", "centre_sms_30"),
        *robot_days,
        (-17, "email", "centre_email_17"),
        (-17, "operator_task", "operator_call"),
        (-5, "sms", "centre_sms_5"),
    ]
    assert robot_days[0][0] == -29 and robot_days[-1][0] == -18  # the robot stops at −17


def test_renewal_centre_flag_on_other_products_keeps_base_informing() -> None:
    assert segment_of(policy(product="IFL", product_code="305", renewal_centre=True)) is Segment.BASE
    assert plan(product="IFL", product_code="305", renewal_centre=True) == [(-30, "sms", "base_ifl_30")]


@pytest.mark.parametrize(
    ("product", "rates", "suppressed"),
    [
        ("KASKO", {"KASKO": 0.75}, True),
        ("KASKO", {"KASKO": 0.74}, False),
        ("OSAGO", {"OSAGO": 0.80}, True),
        ("KASKO_OSAGO", {"KASKO": 0.9, "OSAGO": 0.7}, False),
        ("KASKO_OSAGO", {"KASKO": 0.9, "OSAGO": 0.75}, True),
        ("IFL", {"IFL": 0.79}, False),
        ("IFL", {"IFL": 0.80}, True),
        ("MORTGAGE", {"KASKO": 1.0, "OSAGO": 1.0, "IFL": 1.0}, False),
        ("KASKO", {}, False),
    ],
)
def test_agent_performance_gate(product: str, rates: dict[str, float], suppressed: bool) -> None:
    p = policy(product=product, product_code="305", bank="SBER", agent={"renewal_rates": rates})
    reason = gate_reason(p, segment_of(p))
    assert (reason is not None) is suppressed
    if reason:
        assert reason.startswith("agent_meets_renewal_norms (")


def test_gate_never_touches_the_renewal_centre_journey() -> None:
    p = policy(product="KASKO", renewal_centre=True, agent={"renewal_rates": {Line.KASKO: 1.0}})
    assert gate_reason(p, segment_of(p)) is None


# ---- what the journey does around the table (renewals.rules, interpreted by the workflow) ---------

FACTS = Facts(
    first_prolongation_year=True, draft=False, quote=False, engaged_by=None, operator_task_opened=False
)


@pytest.mark.parametrize(
    ("condition", "facts", "reason"),
    [
        (Condition.ALWAYS, {"draft": True, "quote": True}, None),
        (
            Condition.FIRST_PROLONGATION_YEAR,
            {"first_prolongation_year": False},
            "not_first_prolongation_year",
        ),
        (Condition.FIRST_PROLONGATION_YEAR, {}, None),
        (Condition.NO_DRAFT_QUOTE_OR_PAYMENT, {"draft": True}, "draft_exists"),
        (Condition.NO_DRAFT_QUOTE_OR_PAYMENT, {"quote": True}, "quote_exists"),
        (Condition.NO_DRAFT_OR_PAYMENT, {"quote": True}, None),  # the centre's −5: a quote is not a draft
        (Condition.NO_DRAFT_OR_PAYMENT, {"draft": True}, "draft_exists"),
        (Condition.NOT_ENGAGED, {"engaged_by": EventType.VK_READ}, "client_engaged (vk_read)"),
        (Condition.NO_OPERATOR_TASK, {"operator_task_opened": True}, "operator_task_already_opened"),
    ],
)
def test_a_condition_holds_a_touchpoint_back_for_its_own_reason(
    condition: Condition, facts: dict[str, object], reason: str | None
) -> None:
    assert unmet(condition, dataclasses.replace(FACTS, **facts)) == reason  # type: ignore[arg-type]


def test_late_intake_opens_the_operator_task_and_notes_a_series_once() -> None:
    centre = touchpoints_for(policy("KASKO", renewal_centre=True))
    whats = {(tp.day, tp.rule.channel): late_intake(tp) for tp in centre}
    assert whats[(-17, Channel.OPERATOR_TASK)] is LateIntake.OPERATOR_NOW
    assert whats[(-29, Channel.ROBOT_CALL)] is LateIntake.NOTE
    assert whats[(-28, Channel.ROBOT_CALL)] is LateIntake.SKIP
    assert whats[(-30, Channel.SMS)] is LateIntake.NOTE


def test_robot_contact_hands_over_and_only_a_refused_number_stops_the_series() -> None:
    assert robot_handoff(RobotOutcome.AGREED) == "отклик на звонок Робота Даши: agreed"
    assert robot_handoff(RobotOutcome.NO_ANSWER) is None and robot_handoff(RobotOutcome.BUSY) is None
    assert robot_series_stops("InvalidPhone", permanent=True)
    assert not robot_series_stops("CallingWindowClosed", permanent=True)
    assert not robot_series_stops("ProviderUnavailable", permanent=False)


def test_a_policy_update_may_not_change_what_decides_the_touchpoints() -> None:
    current = policy("KASKO", renewal_centre=True)
    assert policy_update_problem("j", current, current.model_copy(update={"number": "OTHER"})) is not None
    moved = current.model_copy(
        update={"client": current.client.model_copy(update={"email": "n@example.org"})}
    )
    assert policy_update_problem("j", current, moved) is None
    problem = policy_update_problem("j", current, current.model_copy(update={"renewal_centre": False}))
    assert problem is not None and problem.startswith("renewal_centre cannot change")


def test_stages_after_touchpoints() -> None:
    stages = {
        (tp.day, tp.rule.channel): stage_after(tp)
        for tp in touchpoints_for(policy("KASKO", renewal_centre=True))
    }
    assert stages[(-30, Channel.EMAIL)] is Stage.INFORMING
    assert stages[(-29, Channel.ROBOT_CALL)] is Stage.ROBOT_CALLING
    assert stages[(-17, Channel.OPERATOR_TASK)] is Stage.OPERATOR
    assert stages[(-5, Channel.SMS)] is Stage.FINAL_REMINDER

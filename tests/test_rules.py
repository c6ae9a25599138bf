"""The rules table gives each product exactly the seed's touchpoints; the gate follows the norms."""

from __future__ import annotations

import pytest

from renewals.models import Line
from renewals.rules import Segment, gate_reason, segment_of, touchpoints_for
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

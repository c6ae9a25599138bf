"""Every journey branch of seed 000, run through the real workflow and activities on the
time-skipping test server (one `simulate` batch for the whole module, each test checks its scenario).

Dates: the default policy's last day of cover is Tue 20.04.27, so −45 is Sat 06.03 (09:00, weekend
window), −30 Sun 21.03 (09:00), −29 Mon 22.03 (08:00) … −18 Fri 02.04, −17 Sat 03.04 (09:00),
−5 Thu 15.04 (08:00).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from renewals.journey_api import EntryStatus
from renewals.models import Channel
from renewals.settings import get_settings
from starter.simulate import parse_scenarios, simulate
from tests.factories import policy, scenario, scenario_phone
from tests.harness import INTAKE, journey_harness

CENTRE = {"renewal_centre": True}
SAME_CLIENT = {"phone": "+79160000001", "email": "same@example.org", "vk_id": "1"}
GATE_AGENT = {"renewal_rates": {"KASKO": 0.8, "OSAGO": 0.7, "IFL": 0.5}}

SCENARIOS = [
    scenario("kasko", "KASKO"),
    scenario("kasko-osago", "KASKO_OSAGO"),
    scenario("osago-first-year", "OSAGO", first_prolongation_year=True),
    scenario("osago-later-year", "OSAGO", first_prolongation_year=False),
    scenario("ifl-305", "IFL", product_code="305"),
    scenario("ifl-other", "IFL", product_code="999"),
    scenario("ifl-354", "IFL", product_code="354"),
    scenario("ifl-gate", "IFL", product_code="305", agent={"renewal_rates": {"IFL": 0.85}}),
    scenario("ifl-gate-not-met", "IFL", product_code="305", agent={"renewal_rates": {"IFL": 0.79}}),
    scenario(
        "mortgage-gate-never",
        "MORTGAGE",
        bank="SBER",
        agent={"renewal_rates": {"KASKO": 1, "OSAGO": 1, "IFL": 1}},
    ),
    scenario("mortgage-sber", "MORTGAGE", bank="SBER"),
    scenario("mortgage-other", "MORTGAGE", bank="OTHER"),
    scenario("kasko-draft", "KASKO", events=[{"day": -10, "type": "draft_created"}]),
    scenario("kasko-quote", "KASKO", events=[{"day": -10, "type": "quote_created"}]),
    scenario("mortgage-draft", "MORTGAGE", bank="SBER", events=[{"day": -6, "type": "draft_created"}]),
    scenario("kasko-paid", "KASKO", events=[{"day": -20, "type": "payment_received"}]),
    scenario("kasko-renewed", "KASKO", events=[{"day": -20, "type": "renewed"}]),
    scenario("kasko-opt-out", "KASKO", events=[{"at": "2027-03-10T12:00:00+03:00", "type": "opt_out"}]),
    scenario("kasko-cancelled", "KASKO", events=[{"day": -40, "type": "policy_cancelled"}]),
    scenario("kasko-gate", "KASKO", agent=GATE_AGENT),
    scenario("osago-gate-not-met", "OSAGO", first_prolongation_year=True, agent=GATE_AGENT),
    scenario("centre-no-answer", "KASKO", **CENTRE),
    scenario("centre-osago-quote", "OSAGO", events=[{"day": -10, "type": "quote_created"}], **CENTRE),
    scenario("centre-draft", "KASKO_OSAGO", events=[{"day": -10, "type": "draft_created"}], **CENTRE),
    scenario("centre-paid", "KASKO", events=[{"day": -25, "type": "payment_received"}], **CENTRE),
    scenario("centre-gate-ignored", "KASKO", agent=GATE_AGENT, **CENTRE),
    scenario("centre-kasko-osago", "KASKO_OSAGO", **CENTRE),
    # An event after the journey ended (paid at −20, a late "opened" at −3) has nowhere to go.
    scenario(
        "event-after-the-end",
        "KASKO",
        events=[{"day": -20, "type": "payment_received"}, {"day": -3, "type": "email_opened"}],
    ),
    scenario(
        "centre-email-opened",
        "KASKO",
        events=[{"day": -30, "time": "13:00", "type": "email_opened"}],
        **CENTRE,
    ),
    scenario("centre-vk-read", "KASKO", events=[{"day": -30, "type": "vk_read"}], **CENTRE),
    scenario("centre-sms-replied", "KASKO", events=[{"day": -30, "type": "sms_replied"}], **CENTRE),
    scenario("centre-engaged-mid-robot", "KASKO", events=[{"day": -25, "type": "email_opened"}], **CENTRE),
    scenario("centre-robot-agreed", "KASKO", robot=["no_answer", "agreed"], **CENTRE),
    scenario("centre-robot-refused", "KASKO", robot=["busy", "busy", "refused"], **CENTRE),
    scenario("centre-robot-callback", "KASKO", robot=["callback"], **CENTRE),
    scenario("centre-robot-dnc", "KASKO", robot=["do_not_contact"], **CENTRE),
    scenario("holiday", "KASKO", now="2027-10-01T10:00:00+03:00", expires_on="2027-12-19"),
    scenario("transferred-saturday", "KASKO", now="2027-01-10T10:00:00+03:00", expires_on="2027-04-06"),
    scenario(
        "vladivostok",
        "OSAGO",
        first_prolongation_year=True,
        expires_on="2027-04-22",
        now="2027-03-01T10:00:00+10:00",
        client={"timezone": "Asia/Vladivostok"},
    ),
    scenario("late-centre", "KASKO", now="2027-03-31T10:00:00+03:00", **CENTRE),
    scenario("late-evening", "KASKO", now="2027-03-06T21:00:00+03:00"),
    scenario("late-after-all", "KASKO", now="2027-04-17T10:00:00+03:00"),
    scenario("no-email-no-vk", "KASKO", client={"email": None, "vk_id": None}, **CENTRE),
    # Two what-ifs for one client: the opt-out in one must not leak into the other.
    scenario("same-client-opts-out", "KASKO", client=SAME_CLIENT, events=[{"day": -40, "type": "opt_out"}]),
    scenario("same-client-stays", "KASKO", client=SAME_CLIENT),
]


@pytest.fixture(scope="module")
async def results() -> dict[str, dict[str, Any]]:
    """The rules' days and windows, sent at the window's opening: the morning spread (a stable
    per-journey offset into the window, on by default; tests/test_sendwindow.py) is pinned to 0 here
    so the times below read like the seed's table."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RENEWALS_WINDOW_SPREAD_MINUTES", "0")
        get_settings.cache_clear()
        parsed = parse_scenarios({"scenarios": SCENARIOS}, datetime.now(UTC))
        ran = {r["id"]: r for r in await simulate(parsed)}
    get_settings.cache_clear()  # the environment is restored: so are the settings
    return ran


def rows(result: dict[str, Any]) -> list[tuple[str, int, str, str, str, str | None]]:
    """(local minute with offset, day, channel, status, template, reason) for each timeline entry."""
    return [
        (e["at"][:16] + e["at"][-6:], e["day"], e["channel"], e["status"], e["template"], e["reason"])
        for e in result["timeline"]
    ]


def robot_calls(result: dict[str, Any]) -> list[tuple[int, str]]:
    """The calls Робот Даша placed (not the suppressed robot touchpoints)."""
    return [
        (e["day"], e["reason"])
        for e in result["timeline"]
        if e["channel"] == "robot_call" and e["status"] != "suppressed"
    ]


SENT_45 = ("2027-03-06T09:00+03:00", -45, "sms", "sent", "base_kasko_45", None)
SENT_5 = ("2027-04-15T08:00+03:00", -5, "sms", "sent", "base_kasko_5", None)
NO_ANSWER_CALLS = [(day, "outcome: no_answer") for day in range(-29, -17)]


@pytest.mark.parametrize("sid", ["kasko", "kasko-osago"])
async def test_kasko_minus_45_and_minus_5(results: dict[str, Any], sid: str) -> None:
    assert rows(results[sid]) == [SENT_45, SENT_5]
    assert results[sid]["final_stage"] == "lapsed"
    assert results[sid]["timeline"][0]["text"].startswith(
        "Иван Петрович, Ваш полис КАСКО заканчивается 20.04.27"
    )
    assert results[sid]["timeline"][0]["to"] == scenario_phone(sid)


async def test_standalone_osago_first_year_gets_minus_30(results: dict[str, Any]) -> None:
    assert rows(results["osago-first-year"]) == [
        ("2027-03-21T09:00+03:00", -30, "sms", "sent", "base_osago_30", None),
        ("2027-04-15T08:00+03:00", -5, "sms", "sent", "base_osago_5", None),
    ]


async def test_standalone_osago_later_year_only_gets_minus_5(results: dict[str, Any]) -> None:
    assert rows(results["osago-later-year"]) == [
        ("2027-03-21T09:00+03:00", -30, "sms", "suppressed", "base_osago_30", "not_first_prolongation_year"),
        ("2027-04-15T08:00+03:00", -5, "sms", "sent", "base_osago_5", None),
    ]


async def test_ifl_305_at_minus_30_and_other_ifl_products_nothing(results: dict[str, Any]) -> None:
    assert rows(results["ifl-305"]) == [
        ("2027-03-21T09:00+03:00", -30, "sms", "sent", "base_ifl_30", None),
    ]
    assert rows(results["ifl-other"]) == []


async def test_mortgage_sber_minus_45_other_banks_minus_30_both_minus_5(results: dict[str, Any]) -> None:
    assert [(r[1], r[3], r[4]) for r in rows(results["mortgage-sber"])] == [
        (-45, "sent", "base_mortgage_sber_45"),
        (-5, "sent", "base_mortgage_5"),
    ]
    assert [(r[1], r[3], r[4]) for r in rows(results["mortgage-other"])] == [
        (-30, "sent", "base_mortgage_30"),
        (-5, "sent", "base_mortgage_5"),
    ]


@pytest.mark.parametrize(
    ("sid", "reason"),
    [("kasko-draft", "draft_exists"), ("kasko-quote", "quote_exists"), ("mortgage-draft", "draft_exists")],
)
async def test_minus_5_is_suppressed_by_a_draft_or_quote(
    results: dict[str, Any], sid: str, reason: str
) -> None:
    last = rows(results[sid])[-1]
    assert (last[1], last[3], last[5]) == (-5, "suppressed", reason)
    assert results[sid]["final_stage"] == "lapsed"


@pytest.mark.parametrize(
    ("sid", "stage"),
    [("kasko-paid", "paid"), ("kasko-renewed", "renewed")],
)
async def test_payment_or_renewal_stops_the_journey(results: dict[str, Any], sid: str, stage: str) -> None:
    assert rows(results[sid]) == [SENT_45]
    assert results[sid]["final_stage"] == stage


@pytest.mark.parametrize(
    ("sid", "stage"),
    [("kasko-opt-out", "opted_out"), ("kasko-cancelled", "cancelled")],
)
async def test_opt_out_or_cancellation_sends_nothing_more(
    results: dict[str, Any], sid: str, stage: str
) -> None:
    assert rows(results[sid]) == [SENT_45]
    assert results[sid]["final_stage"] == stage


async def test_agent_gate_suppresses_company_sms_with_the_reason(results: dict[str, Any]) -> None:
    reason = "agent_meets_renewal_norms (KASKO 80% ≥ 75%)"
    assert rows(results["kasko-gate"]) == [
        ("2027-03-06T09:00+03:00", -45, "sms", "suppressed", "base_kasko_45", reason),
        ("2027-04-15T08:00+03:00", -5, "sms", "suppressed", "base_kasko_5", reason),
    ]
    assert [r[3] for r in rows(results["osago-gate-not-met"])] == ["sent", "sent"]  # OSAGO 70 % < 75 %


async def test_renewal_centre_full_journey_without_response(results: dict[str, Any]) -> None:
    timeline = rows(results["centre-no-answer"])
    assert timeline[:3] == [
        ("2027-03-21T09:00+03:00", -30, "email", "sent", "centre_email_30", None),
        ("2027-03-21T09:00+03:00", -30, "vk", "sent", "centre_vk_30", None),
        ("2027-03-21T09:00+03:00", -30, "sms", "sent", "centre_sms_30", None),
    ]
    assert robot_calls(results["centre-no-answer"]) == NO_ANSWER_CALLS
    assert timeline[3][0] == "2027-03-22T08:00+03:00"
    assert timeline[-3:] == [
        ("2027-04-03T09:00+03:00", -17, "email", "sent", "centre_email_17", None),
        (
            "2027-04-03T09:00+03:00",
            -17,
            "operator_task",
            "sent",
            "operator_call",
            "Робот Даша прекратил обзвон (−17)",
        ),
        ("2027-04-15T08:00+03:00", -5, "sms", "sent", "centre_sms_5", None),
    ]
    operator = results["centre-no-answer"]["timeline"][-2]
    assert operator["to"] == "msk" and "Агент Петрова Анна" in operator["text"]


async def test_renewal_centre_minus_5_ignores_a_quote_but_not_a_draft(results: dict[str, Any]) -> None:
    assert rows(results["centre-osago-quote"])[-1][1:4] == (-5, "sms", "sent")
    assert rows(results["centre-draft"])[-1][1:] == (-5, "sms", "suppressed", "centre_sms_5", "draft_exists")


async def test_renewal_centre_payment_stops_the_robot(results: dict[str, Any]) -> None:
    # paid at 12:00 on day −25: that morning's 08:00 call had already happened
    assert [day for day, _ in robot_calls(results["centre-paid"])] == [-29, -28, -27, -26, -25]
    assert results["centre-paid"]["final_stage"] == "paid"


async def test_gate_does_not_apply_to_the_renewal_centre(results: dict[str, Any]) -> None:
    assert [r[3] for r in rows(results["centre-gate-ignored"])[:3]] == ["sent", "sent", "sent"]


@pytest.mark.parametrize(
    ("sid", "event"),
    [
        ("centre-email-opened", "email_opened"),
        ("centre-vk-read", "vk_read"),
        ("centre-sms-replied", "sms_replied"),
    ],
)
async def test_an_engaged_client_gets_no_robot(results: dict[str, Any], sid: str, event: str) -> None:
    timeline = rows(results[sid])
    assert robot_calls(results[sid]) == []
    assert timeline[3] == (
        "2027-03-22T08:00+03:00",
        -29,
        "robot_call",
        "suppressed",
        "robot_dasha",
        f"client_engaged ({event})",
    )
    assert [r[2:4] for r in timeline[4:]] == [("email", "sent"), ("operator_task", "sent"), ("sms", "sent")]


async def test_engagement_during_the_robot_period_stops_the_calls(results: dict[str, Any]) -> None:
    assert [day for day, _ in robot_calls(results["centre-engaged-mid-robot"])] == [-29, -28, -27, -26, -25]


async def test_robot_contact_hands_over_to_an_operator_at_once(results: dict[str, Any]) -> None:
    result = results["centre-robot-agreed"]
    assert robot_calls(result) == [(-29, "outcome: no_answer"), (-28, "outcome: agreed")]
    timeline = rows(result)
    handoff = timeline[5]
    assert handoff[1:5] == (-28, "operator_task", "sent", "operator_call")
    assert handoff[5] == "отклик на звонок Робота Даши: agreed"
    assert timeline[6:8] == [
        ("2027-04-03T09:00+03:00", -17, "email", "sent", "centre_email_17", None),
        (
            "2027-04-03T09:00+03:00",
            -17,
            "operator_task",
            "suppressed",
            "operator_call",
            "operator_task_already_opened",
        ),
    ]


@pytest.mark.parametrize(
    ("sid", "calls", "reason"),
    [
        ("centre-robot-refused", 3, "отклик на звонок Робота Даши: refused"),
        ("centre-robot-callback", 1, "отклик на звонок Робота Даши: callback"),
    ],
)
async def test_refusal_and_callback_also_go_to_an_operator(
    results: dict[str, Any], sid: str, calls: int, reason: str
) -> None:
    assert len(robot_calls(results[sid])) == calls
    assert next(r[5] for r in rows(results[sid]) if r[2] == "operator_task") == reason


async def test_do_not_contact_to_the_robot_ends_everything(results: dict[str, Any]) -> None:
    result = results["centre-robot-dnc"]
    assert robot_calls(result) == [(-29, "outcome: do_not_contact")]
    assert len(result["timeline"]) == 4
    assert result["final_stage"] == "opted_out"


async def test_weekday_holiday_uses_the_weekend_window(results: dict[str, Any]) -> None:
    assert rows(results["holiday"])[0][:2] == ("2027-11-04T09:00+03:00", -45)


async def test_transferred_working_saturday_uses_the_working_window(results: dict[str, Any]) -> None:
    assert rows(results["transferred-saturday"])[0][:2] == ("2027-02-20T08:00+03:00", -45)


async def test_vladivostok_client_is_written_to_in_vladivostok_morning(results: dict[str, Any]) -> None:
    assert rows(results["vladivostok"])[0][:2] == ("2027-03-23T08:00+10:00", -30)


async def test_late_intake_never_sends_for_a_past_day(results: dict[str, Any]) -> None:
    timeline = rows(results["late-centre"])
    assert timeline[:4] == [
        ("2027-03-31T10:00+03:00", -20, channel, "suppressed", template, "day_passed_before_intake")
        for channel, template in [
            ("email", "centre_email_30"),
            ("vk", "centre_vk_30"),
            ("sms", "centre_sms_30"),
            ("robot_call", "robot_dasha"),
        ]
    ]
    assert robot_calls(results["late-centre"]) == [(d, "outcome: no_answer") for d in (-20, -19, -18)]
    assert timeline[4][0] == "2027-03-31T10:00+03:00"  # today's window is open: call now


async def test_a_touchpoint_due_after_todays_window_waits_for_the_next(results: dict[str, Any]) -> None:
    assert rows(results["late-evening"])[0] == (
        "2027-03-07T09:00+03:00",
        -44,
        "sms",
        "sent",
        "base_kasko_45",
        None,
    )


async def test_intake_after_the_last_touchpoint_sends_nothing(results: dict[str, Any]) -> None:
    assert [r[3:6] for r in rows(results["late-after-all"])] == [
        ("suppressed", "base_kasko_45", "day_passed_before_intake"),
        ("suppressed", "base_kasko_5", "day_passed_before_intake"),
    ]
    assert results["late-after-all"]["final_stage"] == "lapsed"


async def test_permanent_failure_is_recorded_and_the_rest_carries_on(tmp_path: Path) -> None:
    """A number the provider refuses for good. (`renewals simulate` and import refuse `12345` up front
    — tests/test_real_input.py — so this journey is started directly, as one meeting a provider's
    refusal would be.)"""
    bad = policy("KASKO", number="BAD-PHONE", renewal_centre=True, client={"phone": "12345"})
    async with journey_harness(tmp_path) as h:
        handle = await h.start(bad, INTAKE)
        timeline = (await handle.result()).timeline
    sms = [e for e in timeline if e.channel is Channel.SMS]
    assert sms[0].status is EntryStatus.FAILED and (sms[0].reason or "").startswith("InvalidPhone:")
    assert (timeline[0].channel, timeline[0].status) == (Channel.EMAIL, EntryStatus.SENT)
    robot = [e.status for e in timeline if e.channel is Channel.ROBOT_CALL]
    assert robot == [EntryStatus.FAILED]  # one try, then no more calls


async def test_missing_addresses_are_suppressed_with_the_reason(results: dict[str, Any]) -> None:
    assert [r[2:] for r in rows(results["no-email-no-vk"])[:3]] == [
        ("email", "suppressed", "centre_email_30", "no_email_address"),
        ("vk", "suppressed", "centre_vk_30", "no_vk_id"),
        ("sms", "sent", "centre_sms_30", None),
    ]


async def test_simulated_scenarios_do_not_share_an_opt_out_list(results: dict[str, Any]) -> None:
    assert results["same-client-opts-out"]["final_stage"] == "opted_out"
    assert [r[3] for r in rows(results["same-client-stays"])] == ["sent", "sent"]


async def test_ifl_354_like_305_and_the_ifl_norm_is_80_percent(results: dict[str, Any]) -> None:
    assert rows(results["ifl-354"]) == [("2027-03-21T09:00+03:00", -30, "sms", "sent", "base_ifl_30", None)]
    assert "Ваш полис страхования имущества №" in results["ifl-354"]["timeline"][0]["text"]
    gated = rows(results["ifl-gate"])
    assert [(r[3], r[5]) for r in gated] == [("suppressed", "agent_meets_renewal_norms (IFL 85% ≥ 80%)")]
    assert [r[3] for r in rows(results["ifl-gate-not-met"])] == ["sent"]  # 79 % < 80 %


async def test_mortgage_clients_are_informed_whatever_the_agents_rates(results: dict[str, Any]) -> None:
    assert [r[3] for r in rows(results["mortgage-gate-never"])] == ["sent", "sent"]


async def test_the_centres_texts_name_a_kasko_osago_policy_kasko(results: dict[str, Any]) -> None:
    texts = {e["template"]: e["text"] for e in results["centre-kasko-osago"]["timeline"]}
    assert texts["centre_sms_30"] == (
        "Иван Петрович, Ваш полис КАСКО заканчивается 20.04.27. Продлите его у Вашего Агента "
        "(Тел. +7 903 111-22-33) или позвоните в АльфаСтрахование (тел. +7 495 777-00-00)."
    )
    assert texts["centre_sms_5"] == (
        "Иван Петрович, Ваш полис КАСКО заканчивается 20.04.27. Продлите его, позвонив в "
        "АльфаСтрахование (тел. +7 495 777-00-00)."
    )


async def test_the_operator_task_after_a_robot_contact_keeps_the_agent(results: dict[str, Any]) -> None:
    task = next(e for e in results["centre-robot-agreed"]["timeline"] if e["channel"] == "operator_task")
    assert task["to"] == "msk" and "Агент Петрова Анна" in task["text"]


async def test_an_event_after_the_journey_ended_is_dropped_and_simulate_finishes(
    results: dict[str, Any],
) -> None:
    result = results["event-after-the-end"]
    assert result["final_stage"] == "paid"
    assert rows(result) == [SENT_45]

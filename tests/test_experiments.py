"""Holdout experiments: assignment, the registry, the uplift and attribution report, and the gate on
measured rates (the journey side — a held-out touchpoint never sent — is in test_journey_holdouts.py)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from renewals import agent_rates
from renewals.db.database import Database
from renewals.db.tables import JourneyRow, OutboxRow
from renewals.db.tables_experiments import ExperimentArmRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.experiments.assignment import (
    Arm,
    arm_of,
    arm_of_hash,
    arms_for,
    holdouts_for,
    identity_hash,
    unit_identity,
)
from renewals.experiments.config import RULE_GROUPS, Experiment, Unit
from renewals.experiments.registry import ExperimentChanged, record_arms, register
from renewals.experiments.report import experiment_report, report_csv, report_html
from renewals.intake.start_plan import GateRates, StartPlan
from renewals.models import Line, Policy
from renewals.rules import gate_reason, segment_of
from renewals.settings import Settings
from starter.ops import ops
from tests.factories import policy, scenario

TODAY = date(2027, 6, 1)
BASE_SMS = Experiment(
    name="base-sms-2027",
    hold_out=("base_sms_early",),
    share=0.05,
    starts_on=date(2027, 1, 1),
    ends_on=date(2027, 12, 31),
)


def client_policy(i: int, product: str = "KASKO", **changes: Any) -> Policy:
    return policy(product, number=f"7100K/046/{i:06d}/26", client={"phone": f"+7916{i:07d}"}, **changes)


def test_an_experiment_names_known_groups_a_share_and_dates() -> None:
    assert "base_kasko_45" in BASE_SMS.templates and "base_kasko_5" not in BASE_SMS.templates
    with pytest.raises(ValueError, match="not a rule group"):
        Experiment(name="x", hold_out=("sms_everything",), share=0.05, starts_on=TODAY, ends_on=TODAY)
    with pytest.raises(ValueError, match=r"less than or equal to 0\.5"):
        Experiment(name="x", hold_out=("robot_dasha",), share=0.6, starts_on=TODAY, ends_on=TODAY)
    with pytest.raises(ValueError, match="before starts_on"):
        Experiment(name="x", hold_out=("robot_dasha",), share=0.1, starts_on=TODAY, ends_on=date(2027, 1, 1))
    assert RULE_GROUPS["robot_dasha"] == {"robot_dasha"}


def test_assignment_splits_a_large_sample_within_the_expected_share() -> None:
    n = 200_000  # identities as `unit_identity` makes them: phone|last name|first name
    identities = (f"+7916{i:07d}|иванов|иван" for i in range(n))
    held = sum(
        arm_of_hash(BASE_SMS, identity_hash(BASE_SMS, identity)) is Arm.HOLDOUT for identity in identities
    )
    assert unit_identity(client_policy(5), Unit.CLIENT) == "+79160000005|иванов|иван"
    expected, sd = n * BASE_SMS.share, (n * BASE_SMS.share * (1 - BASE_SMS.share)) ** 0.5
    assert abs(held - expected) < 4 * sd, (held, expected)


def test_a_client_keeps_their_arm_across_policies_terms_and_reimports() -> None:
    first = client_policy(7)
    arms = {arm_of(BASE_SMS, first)}
    next_term = first.model_copy(update={"expires_on": date(2028, 4, 20)})
    other_policy = first.model_copy(update={"number": "7100K/046/999999/26"})
    spelled = first.model_copy(update={"client": first.client.model_copy(update={"last_name": "  ИВАНОВ "})})
    arms |= {arm_of(BASE_SMS, p) for p in (next_term, other_policy, spelled)}
    assert len(arms) == 1


def test_assignment_is_the_same_in_another_process() -> None:
    policies = [client_policy(i) for i in range(300)]
    here = [arm_of(BASE_SMS, p).value for p in policies]
    script = (
        "import json, sys\n"
        "from renewals.experiments.assignment import arm_of\n"
        "from renewals.experiments.config import Experiment\n"
        "from renewals.models import Policy\n"
        "data = json.load(sys.stdin)\n"
        "e = Experiment.model_validate(data['experiment'])\n"
        "print(json.dumps([arm_of(e, Policy.model_validate(p)).value for p in data['policies']]))\n"
    )
    payload = {
        "experiment": BASE_SMS.model_dump(mode="json"),
        "policies": [p.model_dump(mode="json") for p in policies],
    }
    there = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(payload), capture_output=True, text=True, check=True
    )
    assert json.loads(there.stdout) == here and "holdout" in here


def test_only_the_experiments_that_apply_to_a_policy_assign_it() -> None:
    robot = Experiment(name="robot", hold_out=("robot_dasha",), share=0.5, starts_on=TODAY, ends_on=TODAY)
    base = client_policy(1)
    centre = client_policy(2, renewal_centre=True)
    assert set(arms_for(base, [BASE_SMS, robot], TODAY)) == {"base-sms-2027"}
    assert set(arms_for(centre, [BASE_SMS, robot], TODAY)) == {"robot"}
    assert arms_for(base, [BASE_SMS], date(2028, 1, 1)) == {}  # ended
    held = next(p for p in (client_policy(i) for i in range(200)) if arm_of(BASE_SMS, p) is Arm.HOLDOUT)
    [holdout] = holdouts_for(held, [BASE_SMS], TODAY)
    assert holdout.experiment == "base-sms-2027" and "base_kasko_45" in holdout.templates


async def test_a_running_experiment_cannot_change_its_share(sqlite_db: Database) -> None:
    assert await register(sqlite_db, [BASE_SMS]) == ["base-sms-2027"]
    assert await register(sqlite_db, [BASE_SMS]) == []
    longer = BASE_SMS.model_copy(update={"ends_on": date(2028, 3, 31)})
    assert await register(sqlite_db, [longer]) == []  # only the end may move
    with pytest.raises(ExperimentChanged, match="start a new one"):
        await register(sqlite_db, [BASE_SMS.model_copy(update={"share": 0.1})])
    with pytest.raises(ExperimentChanged, match="salt"):
        await register(sqlite_db, [BASE_SMS.model_copy(update={"salt": "other"})])
    twin = BASE_SMS.model_copy(update={"name": "base-sms-twin"})
    with pytest.raises(ExperimentChanged, match="one template, one experiment at a time"):
        await register(sqlite_db, [BASE_SMS, twin])


async def test_arms_are_recorded_once_for_both_arms(sqlite_db: Database) -> None:
    policies = [client_policy(i) for i in range(60)]
    written = [await record_arms(sqlite_db, p, [BASE_SMS], TODAY) for p in policies]
    assert written == [1] * 60
    assert [await record_arms(sqlite_db, p, [BASE_SMS], TODAY) for p in policies] == [0] * 60


# ---- the report on a synthetic portfolio with a known uplift ------------------------------------------


async def _synthetic(db: Database, n: int, share: float, held_rate: float, treated_rate: float) -> int:
    """Outcomes drawn with the given rates; some treated renewals had a −5 SMS two days before, half of
    those a reply the day before. Returns how many replied."""
    rng = random.Random(20270601)
    arms, journeys, sends, facts = [], [], [], []
    ends = TODAY - timedelta(days=10)
    for i in range(n):
        arm = Arm.HOLDOUT if rng.random() < share else Arm.TREATMENT
        product = "KASKO" if i % 2 else "OSAGO"
        secured = rng.random() < (held_rate if arm is Arm.HOLDOUT else treated_rate)
        jid = f"renewal-{i}"
        paid_at = datetime(2027, 5, 15, 12, tzinfo=UTC)
        arms.append(
            {"journey_id": jid, "experiment": "base-sms-2027", "arm": arm.value,
             "policy_number": f"P{i}", "expires_on": ends, "product": product, "segment": "base",
             "agent_id": "A1", "assigned_at": paid_at - timedelta(days=50)}
        )  # fmt: skip
        journeys.append(
            {"id": jid, "policy_number": f"P{i}", "expires_on": ends, "agent_id": "A1", "product": product,
             "stage": "paid" if secured else "lapsed", "updated_at": paid_at}
        )  # fmt: skip
        if arm is Arm.TREATMENT and secured and i % 3 == 0:  # a −5 SMS two days before paying
            sends.append(
                {"dedup_key": f"{jid}:d-5-sms", "journey_id": jid, "touchpoint": "d-5-sms", "channel": "sms",
                 "recipient": None, "template": "base_kasko_5", "text": None, "status": "sent",
                 "created_at": paid_at - timedelta(days=2), "updated_at": paid_at - timedelta(days=2)}
            )  # fmt: skip
            if i % 2 == 0:
                facts.append(
                    {"source": "sms", "event_id": f"e{i}", "journey_id": jid, "kind": "replied",
                     "processed": True, "received_at": paid_at - timedelta(days=1)}
                )  # fmt: skip
    async with db.session() as session, session.begin():
        for table, rows in ((ExperimentArmRow, arms), (JourneyRow, journeys), (OutboxRow, sends)):
            await session.execute(insert(table), rows)
        if facts:
            await session.execute(insert(WebhookEventRow), facts)
    return len(facts)


async def test_the_report_recovers_a_built_in_uplift_within_its_interval(sqlite_db: Database) -> None:
    replied = await _synthetic(sqlite_db, n=12_000, share=0.2, held_rate=0.60, treated_rate=0.66)
    report = await experiment_report(sqlite_db, TODAY, detect_pp=2.0)
    overall = next(row for row in report.rows if row.breakdown == "all")
    result = overall.result
    assert result.low_pp is not None and result.high_pp is not None
    assert result.low_pp < 6.0 < result.high_pp  # the true uplift is inside the 95 % interval
    assert result.significant and result.p_value is not None and result.p_value < 0.001
    assert result.held_out + result.treated == 12_000 and 0.17 < result.held_out / 12_000 < 0.23
    assert result.needed_per_arm is not None and result.needed_per_arm > result.treated  # 2 pp needs more
    assert {row.value for row in report.rows if row.breakdown == "product"} == {"KASKO", "OSAGO"}
    touch = report.attribution["base-sms-2027"]
    assert touch.by_last_touch["base_kasko_5"] == touch.sent_by_template["base_kasko_5"] > 0
    assert touch.engaged_by_last_touch["base_kasko_5"] == replied > 0
    csv_lines = report_csv(report).splitlines()
    assert csv_lines[0].startswith("experiment,breakdown,value,treated") and len(csv_lines) == 1 + len(
        report.rows
    )
    assert "<svg" in report_html(report) and "base-sms-2027: held out" in report_html(report)


async def test_with_no_true_uplift_the_interval_covers_zero(sqlite_db: Database) -> None:
    await _synthetic(sqlite_db, n=8_000, share=0.3, held_rate=0.62, treated_rate=0.62)
    report = await experiment_report(sqlite_db, TODAY)
    result = next(row for row in report.rows if row.breakdown == "all").result
    assert result.low_pp is not None and result.high_pp is not None and result.low_pp < 0 < result.high_pp


# ---- the gate on measured rates ---------------------------------------------------------------------


async def _finished(db: Database, agent: str, secured: int, lost: int) -> None:
    rows = [
        {"id": f"j-{agent}-{i}", "policy_number": f"N{i}", "expires_on": TODAY - timedelta(days=30),
         "agent_id": agent, "product": "KASKO", "stage": "paid" if i < secured else "lapsed",
         "updated_at": datetime(2027, 5, 1, tzinfo=UTC)}
        for i in range(secured + lost)
    ]  # fmt: skip
    async with db.session() as session, session.begin():
        await session.execute(insert(JourneyRow), rows)


@pytest.mark.parametrize(("finished", "used"), [(29, False), (30, True)])
async def test_the_gate_switches_to_measured_rates_at_the_threshold(
    sqlite_db: Database, finished: int, used: bool
) -> None:
    secured = round(finished * 0.9)
    await _finished(sqlite_db, "A1", secured, finished - secured)  # 90 % measured; the card says 60 %
    plan = await StartPlan.prepare(
        sqlite_db, TODAY, (), GateRates(measured=True, window_days=365, min_policies=30)
    )
    given = plan.policy(client_policy(1))
    assert (given.agent.renewal_rates[Line.KASKO] == pytest.approx(secured / finished)) is used
    suppressed = gate_reason(given, segment_of(given))
    assert (suppressed is not None) is used
    card = await StartPlan.prepare(sqlite_db, TODAY, (), GateRates(measured=False))
    assert card.policy(client_policy(1)).agent.renewal_rates[Line.KASKO] == 0.6


async def test_measured_rates_count_only_the_trailing_window(sqlite_db: Database) -> None:
    await _finished(sqlite_db, "A2", 10, 0)
    counts = await agent_rates.measured_counts(sqlite_db, TODAY, 10)  # ended 30 days ago: outside
    assert ("A2", Line.KASKO) not in counts
    counts = await agent_rates.measured_counts(sqlite_db, TODAY, 60)
    assert counts["A2", Line.KASKO].rate == 1.0


async def test_the_cli_lists_experiments_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db", experiments=[BASE_SMS])
    db = Database(settings.database_url)
    await db.migrate()
    await _synthetic(db, n=2_000, share=0.2, held_rate=0.5, treated_rate=0.6)
    await db.dispose()
    assert await ops(["experiments", "list"], settings) == 0
    listed = capsys.readouterr().out
    assert "base-sms-2027" in listed and "5.0%" in listed
    argv = ["experiments", "report", "--as-of", TODAY.isoformat(), "--csv", str(tmp_path / "u.csv")]
    assert await ops([*argv, "--html", str(tmp_path / "u.html")], settings) == 0
    shown = capsys.readouterr().out
    assert "Uplift of the reminders" in shown and "base_kasko_5" in shown
    assert (tmp_path / "u.csv").read_text(encoding="utf-8").startswith("experiment,breakdown")
    changed = settings.model_copy(update={"experiments": [BASE_SMS.model_copy(update={"share": 0.1})]})
    assert await ops(["experiments", "list"], changed) == 2
    assert "cannot change" in capsys.readouterr().err


async def test_the_dashboard_shows_both_rates_and_which_the_gate_reads(sqlite_db: Database) -> None:
    from renewals.intake.portfolio_store import store_agent
    from renewals.reports.dashboard import agent_dashboard, dashboard_html

    await store_agent(sqlite_db, client_policy(1).agent)  # card: КАСКО 60 %
    await _finished(sqlite_db, "A1", 27, 3)  # measured 90 % of 30
    await StartPlan.prepare(sqlite_db, TODAY, (), GateRates(measured=True, min_policies=30))
    kasko = next(i for i in await agent_dashboard(sqlite_db) if i.agent_id == "A1" and i.line is Line.KASKO)
    assert (kasko.card_rate, kasko.rate, kasko.gate_source, kasko.gate_suppresses) == (
        0.6,
        0.9,
        "measured",
        True,
    )
    assert "measured 90%" in dashboard_html(await agent_dashboard(sqlite_db))
    await StartPlan.prepare(sqlite_db, TODAY, (), GateRates(measured=False))
    kasko = next(i for i in await agent_dashboard(sqlite_db) if i.agent_id == "A1" and i.line is Line.KASKO)
    assert (kasko.gate_source, kasko.gate_suppresses) == ("card", False)


def _simulate(tmp_path: Path, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "scenarios.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "simulate", str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_simulate_shows_held_out_touchpoints_with_their_reason(tmp_path: Path) -> None:
    experiment = {"name": "half", "hold_out": ["base_sms_early"], "share": 0.5,
                  "starts_on": "2027-01-01", "ends_on": "2027-12-31"}  # fmt: skip
    scenarios = [scenario(f"c{i}") for i in range(8)]
    arms = {
        s["id"]: arm_of(Experiment.model_validate(experiment), Policy.model_validate(s["policy"]))
        for s in scenarios
    }
    assert set(arms.values()) == {Arm.HOLDOUT, Arm.TREATMENT}
    done = _simulate(tmp_path, {"experiments": [experiment], "scenarios": scenarios})
    assert done.returncode == 0, done.stderr
    for result in json.loads(done.stdout)["results"]:
        first = result["timeline"][0]
        if arms[result["id"]] is Arm.HOLDOUT:
            assert (first["status"], first["reason"]) == ("suppressed", "holdout (half)"), result["id"]
        else:
            assert first["status"] == "sent", result["id"]
    bad = _simulate(tmp_path, {"experiments": [experiment | {"share": 0.7}], "scenarios": scenarios})
    assert bad.returncode == 2 and bad.stderr.strip().startswith("experiments: [0].share")

"""Retention and erasure (152-FZ), on SQLite and PostgreSQL: `renewals purge` anonymises old finished
journeys only and keeps the audit facts; `renewals forget` erases one client by phone or by policy,
refuses while a journey of theirs runs and with `--end` ends it as opted out first; the do-not-contact
list holds keyed hashes, never an address, and still suppresses; `renewals setup` sets the namespace's
retention on a dev server (and leaves it to `tcld` on Temporal Cloud)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from renewals.activity_io import SendRequest, SuppressionRecord
from renewals.channels.recording import MessageRecord
from renewals.db.database import Database
from renewals.db.tables import (
    Base,
    ClientRow,
    JourneyRow,
    OperatorTaskRow,
    OptOutRow,
    OutboxRow,
    PolicyRow,
)
from renewals.db.tables_ops import JourneySyncRow, OperatorClaimRow
from renewals.delivery import OptOuts
from renewals.intake.portfolio_store import store_policies
from renewals.journey_api import Stage
from renewals.models import Channel, Policy, journey_id
from renewals.outbox import Outbox
from renewals.retention import purge, term_end
from renewals.settings import Settings
from renewals.temporal.setup import retention_warning, set_retention
from starter import ops
from starter import setup as setup_command
from starter.binaries import find_binary
from starter.cli import build_parser
from tests.conftest import DATABASES, database_at
from tests.factories import policy
from tests.harness import INTAKE, journey_harness
from tests.keys import TEST_CONVERTER

NOW = datetime(2027, 6, 1, 12, tzinfo=UTC)
IVANOV = ("Иванов", "Петрович", "+79161234567", "79161234567", "ivan@example.org")  # and VK id 1234567
PETROV_PHONE = "+79160000002"
PETROV = {
    "last_name": "Петров",
    "first_name": "Пётр",
    "patronymic": None,
    "phone": PETROV_PHONE,
    "email": "petr@example.org",
    "vk_id": "7654321",
}


# ---- the data: an old finished journey, a recent one, a running one --------------------------------


def old_policy() -> Policy:  # Иванов's term that ended in January, its journey long over
    return policy("KASKO", number="OLD-1", expires_on="2027-01-20")


def live_policy() -> Policy:  # Петров's term still ahead
    return policy("KASKO", number="LIVE-1", expires_on="2027-07-20", client=PETROV)


async def add_journey_data(db: Database, term: Policy, finished_at: datetime | None) -> str:
    """What a journey leaves in the database: sends (one sent, one suppressed with a provider's error
    quoting the phone), what the recording channel accepted, an operator task with a claim and note,
    the intake sync row, and (once finished) its outcome."""
    client = term.client
    jid = journey_id(term.number, term.expires_on)
    outbox = Outbox(db)
    sms = SendRequest(
        journey_id=jid,
        touchpoint="d-30-sms",
        channel=Channel.SMS,
        template="base_30",
        recipient=client.phone,
        text=f"{client.first_name} {client.patronymic}, полис истекает",
    )
    email = sms.model_copy(
        update={
            "touchpoint": "d-30-email",
            "channel": Channel.EMAIL,
            "recipient": client.email,
            "subject": "Полис",
        }
    )
    for request in (sms, email):
        await outbox.claim(request)
        await MessageRecord(db).accept(request)
        await outbox.mark(
            request.dedup_key, "sent", provider="sandbox", provider_message_id=f"m-{request.touchpoint}"
        )
    await outbox.record(
        SuppressionRecord(
            journey_id=jid,
            touchpoint="d-29-robot_call",
            channel=Channel.ROBOT_CALL,
            template="robot",
            recipient=client.phone,
            status="failed",
            reason=f"InvalidPhone: {client.phone} refused",
        )
    )
    async with db.session() as session, session.begin():
        task = OperatorTaskRow(
            dedup_key=f"{jid}:d-17:operator_task",
            journey_id=jid,
            policy_number=term.number,
            centre_id="msk",
            reason="robot_no_contact",
            text=sms.text,
            status="closed",
            outcome="agreed",
            created_at=NOW,
            closed_at=NOW,
        )
        session.add(task)
        await session.flush()
        session.add(
            OperatorClaimRow(task_id=task.id, operator="op-1", claimed_at=NOW, note=f"звонил {client.phone}")
        )
        session.add(
            JourneySyncRow(journey_id=jid, policy_hash="ab" * 32, cancelled_signalled=False, synced_at=NOW)
        )
        if finished_at is not None:
            session.add(
                JourneyRow(
                    id=jid,
                    policy_number=term.number,
                    expires_on=term.expires_on,
                    agent_id="A1",
                    product="KASKO",
                    stage="renewed",
                    updated_at=finished_at,
                )
            )
    return jid


async def dump(db: Database) -> str:
    """Every value of every table, as one text to search for personal data."""
    values: list[str] = []
    async with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in (await connection.execute(select(table))).all():
                values.extend(str(value) for value in row)
    return "\n".join(values)


async def outbox_rows(db: Database, jid: str) -> dict[str, OutboxRow]:
    async with db.session() as session:
        rows = (await session.scalars(select(OutboxRow).where(OutboxRow.journey_id == jid))).all()
    return {row.touchpoint: row for row in rows}


async def count(db: Database, table: type[Base], *where: Any) -> int:
    async with db.session() as session:
        return len((await session.scalars(select(table).where(*where))).all())


async def cli(argv: list[str], db: Database, settings: Settings | None = None) -> int:
    """A `renewals` privacy command on this database (the fixture's PostgreSQL schema included)."""
    args = build_parser().parse_args(argv)
    code: int = await args.ops_handler(args, settings or Settings(), db)
    return code


# ---- purge ----------------------------------------------------------------------------------------


async def test_purge_anonymises_old_finished_journeys_only_and_keeps_the_audit(
    any_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    old, live = old_policy(), live_policy()
    recent = policy(
        "OSAGO",
        number="RECENT-1",
        expires_on="2027-05-20",
        client={**PETROV, "last_name": "Сидоров", "phone": "+79160000003", "email": "s@example.org"},
    )
    await store_policies(any_db, [(old, False), (live, False), (recent, False)])
    old_id = await add_journey_data(any_db, old, finished_at=datetime(2027, 1, 18, tzinfo=UTC))
    live_id = await add_journey_data(any_db, live, finished_at=None)
    recent_id = await add_journey_data(any_db, recent, finished_at=NOW - timedelta(days=10))
    before = await outbox_rows(any_db, old_id)

    report = await purge(any_db, timedelta(days=90), now=NOW)
    assert report.counts == {
        "clients": 1,
        "policies": 1,
        "outbox": 3,
        "sandbox_messages": 2,
        "operator_tasks": 1,
        "operator_claims": 1,
        "journey_sync": 1,
    }
    assert report.journeys == 1

    # The audit facts stay: what was sent when, on which channel, to a masked address, with which result.
    after = await outbox_rows(any_db, old_id)
    assert {tp: (r.channel, r.status, r.provider_message_id, r.created_at) for tp, r in after.items()} == {
        tp: (r.channel, r.status, r.provider_message_id, r.created_at) for tp, r in before.items()
    }
    assert {tp: (r.recipient, r.text) for tp, r in after.items()} == {
        "d-30-sms": ("+7916***4567", None),
        "d-30-email": ("i***@example.org", None),
        "d-29-robot_call": ("+7916***4567", None),
    }
    assert after["d-29-robot_call"].reason == "InvalidPhone: +7916***4567 refused"
    assert await count(any_db, JourneyRow, JourneyRow.id == old_id) == 1
    everything = await dump(any_db)
    for clear in (*IVANOV, "1234567", "Иван Петрович"):
        assert clear not in everything

    # The live and the recently finished journeys keep everything.
    for jid, client in ((live_id, live.client), (recent_id, recent.client)):
        kept = await outbox_rows(any_db, jid)
        assert kept["d-30-sms"].recipient == client.phone and kept["d-30-sms"].text
        assert await count(any_db, JourneySyncRow, JourneySyncRow.journey_id == jid) == 1
        assert await count(any_db, ClientRow, ClientRow.phone == client.phone) == 1
    assert await count(any_db, PolicyRow) == 2

    # Idempotent, through the command: a second run finds nothing left to do.
    assert await cli(["purge", "--older-than", "90"], any_db) == 0
    out = capsys.readouterr().out
    assert "journeys finished before" in out and "kept:" in out
    for table in report.counts:
        assert f"{table} " in out
    assert all(line.split()[1] == "0" for line in out.splitlines() if line.startswith("  "))


async def test_purge_counts_a_journey_whose_cover_ended_even_without_its_outcome(any_db: Database) -> None:
    """A journey terminated by hand never wrote `journeys`: the end of its term is the limit."""
    old = old_policy()
    await store_policies(any_db, [(old, False)])
    jid = await add_journey_data(any_db, old, finished_at=None)
    assert term_end(jid) == date(2027, 1, 20) and term_end("not-a-journey") is None
    assert (await purge(any_db, timedelta(days=90), now=datetime(2027, 4, 19, tzinfo=UTC))).journeys == 0
    report = await purge(any_db, timedelta(days=90), now=datetime(2027, 4, 23, tzinfo=UTC))
    assert (report.journeys, report.counts["outbox"], report.counts["clients"]) == (1, 3, 1)


# ---- forget ---------------------------------------------------------------------------------------


class Forgotten:
    """A Temporal that no longer knows these journeys (closed and past the retention period)."""

    def get_workflow_handle(self, workflow_id: str, **_: Any) -> Forgotten:
        return self

    async def describe(self) -> None:
        raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")


@pytest.fixture
def temporal_forgot(monkeypatch: pytest.MonkeyPatch) -> None:
    async def client(_: Settings) -> Any:
        return Forgotten()

    monkeypatch.setattr(ops, "client", client)


async def two_clients(db: Database) -> tuple[str, str, str]:
    """Иванов with two policies (one journey finished, one never started) and Петров with one."""
    second = policy("OSAGO", number="OSAGO-7", expires_on="2027-09-01")
    await store_policies(db, [(old_policy(), False), (second, False), (live_policy(), False)])
    ivanov = await add_journey_data(db, old_policy(), finished_at=datetime(2027, 1, 18, tzinfo=UTC))
    petrov = await add_journey_data(db, live_policy(), finished_at=None)
    return ivanov, petrov, second.number


async def assert_ivanov_forgotten(db: Database, ivanov: str, petrov: str) -> None:
    everything = await dump(db)
    for clear in (*IVANOV, "1234567", "Иван Петрович"):
        assert clear not in everything
    assert await count(db, PolicyRow) == 1 and await count(db, ClientRow) == 1
    assert {r.recipient for r in (await outbox_rows(db, ivanov)).values()} == {
        "+7916***4567",
        "i***@example.org",
    }
    assert (await outbox_rows(db, petrov))["d-30-sms"].text  # the other client keeps everything
    assert await OptOuts(db).reason(" +79161234567") == "erasure request R-17"  # still suppressed
    assert await OptOuts(db).reason("IVAN@example.org") == "erasure request R-17"
    assert await OptOuts(db).reason(PETROV_PHONE) is None


@pytest.mark.usefixtures("temporal_forgot")
async def test_forget_by_phone_erases_the_client_and_prints_a_masked_act(
    any_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    ivanov, petrov, _ = await two_clients(any_db)
    assert await cli(["forget", "--phone", "8 (916) 123-45-67", "--request", "R-17"], any_db) == 0
    await assert_ivanov_forgotten(any_db, ivanov, petrov)
    act = capsys.readouterr().out
    for expected in ("ACT of erasure", "request: R-17", "phone +7916***4567", "erased at:", ivanov, "kept:"):
        assert expected in act
    assert "i***@example.org" in act and "12***" in act
    lines = {line.split()[0]: line.split()[1] for line in act.splitlines() if line.startswith("  ")}
    assert lines == {
        "clients": "1",
        "policies": "2",
        "outbox": "3",
        "sandbox_messages": "2",
        "operator_tasks": "1",
        "operator_claims": "1",
        "journey_sync": "1",
    }
    for clear in (*IVANOV, "1234567"):
        assert clear not in act


@pytest.mark.usefixtures("temporal_forgot")
async def test_forget_by_policy_erases_all_of_that_clients_data(
    any_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    ivanov, petrov, second = await two_clients(any_db)
    assert await cli(["forget", "--policy", second, "--request", "R-17"], any_db) == 0
    await assert_ivanov_forgotten(any_db, ivanov, petrov)
    assert f"subject: policy {second}" in capsys.readouterr().out
    assert await cli(["forget", "--policy", "NO-SUCH-1"], any_db) == 2
    assert capsys.readouterr().err.strip() == "refused: no policy NO-SUCH-1 in the database"


async def test_forget_refuses_a_running_journey_and_with_end_ends_it_as_opted_out(
    any_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    term = policy("KASKO", number="RUN-1")
    await store_policies(any_db, [(term, False)])
    async with journey_harness(tmp_path, db=any_db) as h:

        async def client(_: Settings) -> Client:
            return h.env.client

        monkeypatch.setattr(ops, "client", client)
        handle = await h.start(term, INTAKE)
        assert await cli(["forget", "--phone", term.client.phone], any_db) == 2
        refusal = capsys.readouterr().err.strip()
        assert len(refusal.splitlines()) == 1 and handle.id in refusal and "--end" in refusal
        assert await count(any_db, ClientRow) == 1  # nothing erased

        assert await cli(["forget", "--phone", term.client.phone, "--end", "--request", "R-18"], any_db) == 0
        assert (await handle.result()).stage is Stage.OPTED_OUT
        assert f"{handle.id} (ended now as opted out)" in capsys.readouterr().out
    assert await count(any_db, ClientRow) == 0 and await count(any_db, PolicyRow) == 0
    assert await count(any_db, JourneyRow, JourneyRow.stage == "opted_out") == 1
    assert await OptOuts(any_db).reason(term.client.phone) is not None


# ---- the do-not-contact list ----------------------------------------------------------------------


async def test_the_opt_out_list_holds_no_clear_address_and_still_suppresses(any_db: Database) -> None:
    opt_outs = OptOuts(any_db)
    await opt_outs.add(["+79161234567", "Ivan@Example.org ", "1234567"], "opt_out (sms STOP)", "j-1")
    async with any_db.session() as session:
        stored = (await session.scalars(select(OptOutRow.address_hash))).all()
    assert len(stored) == 3 and all(len(value) == 64 for value in stored)
    everything = (await dump(any_db)).lower()
    assert all(clear not in everything for clear in ("79161234567", "ivan@", "1234567"))
    assert await opt_outs.reason(" ivan@example.org") == "opt_out (sms STOP)"  # normalised as before
    assert await OptOuts(any_db, hash_key=b"another key").reason("+79161234567") is None  # keyed

    request = SendRequest(
        journey_id="renewal-X-20270420",
        touchpoint="d-30-sms",
        channel=Channel.SMS,
        template="t",
        recipient="+79161234567",
        text="…",
    )
    state = await Outbox(any_db).claim(request, opt_outs.key(request.recipient, request.journey_id))
    assert (state.status, state.reason) == ("suppressed", "OptedOut: opt_out (sms STOP)")


@pytest.fixture(params=DATABASES)
async def db_at_0004(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database migrated up to 0004 only: the opt-out list still holds clear addresses."""
    async with database_at(request.param, tmp_path, "0004") as db:
        yield db


async def test_migration_0005_hashes_the_stored_addresses(db_at_0004: Database) -> None:
    before = sa.table(
        "opt_outs",
        sa.column("address", sa.String),
        sa.column("reason", sa.Text),
        sa.column("journey_id", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = [("+79161234567", None), ("ivan@example.org", "j-1"), ("sim-1|7654321", "sim-1")]
    async with db_at_0004.engine.begin() as connection:
        await connection.execute(
            sa.insert(before),
            [{"address": a, "reason": f"stop {a[-3:]}", "journey_id": j, "created_at": NOW} for a, j in rows],
        )
    await db_at_0004.migrate()
    everything = await dump(db_at_0004)
    assert all(clear not in everything for clear in ("79161234567", "ivan@", "7654321"))
    assert await OptOuts(db_at_0004).reason("+79161234567") == "stop 567"
    assert await OptOuts(db_at_0004).reason("Ivan@example.org") == "stop org"
    assert await OptOuts(db_at_0004, per_journey=True).reason("7654321", "sim-1") == "stop 321"


# ---- the Temporal namespace's retention -----------------------------------------------------------


async def test_setup_sets_the_namespace_retention_and_leaves_cloud_to_tcld(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert retention_warning(30, 60, cloud=False) is not None  # shorter than a journey lives
    assert retention_warning(91, 60, cloud=True) is not None  # more than Temporal Cloud allows
    assert retention_warning(90, 60, cloud=True) is None
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"), data_converter=TEST_CONVERTER, ui=False
    )
    try:
        set_now = await set_retention(env.client, "default", 75)
        assert set_now.changed and set_now.before_days != 75
        assert not (await set_retention(env.client, "default", 75)).changed  # unchanged the second time
        cloud = await set_retention(env.client, "default", 80, cloud=True)
        assert cloud.manual and not cloud.changed
        assert cloud.tcld_command() == "tcld namespace retention set --namespace default --retention-days 80"
        assert (await set_retention(env.client, "default", 75)).before_days == 75  # Cloud: not touched

        async def dev_client(_: Settings) -> Client:
            return env.client

        monkeypatch.setattr(setup_command, "connect", dev_client)
        assert await setup_command.main(Settings(temporal_retention_days=91)) == 0
        assert "retention of closed journeys: set to 91 days (was 75 days)" in capsys.readouterr().out
    finally:
        await env.shutdown()

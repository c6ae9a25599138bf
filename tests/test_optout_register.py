"""The do-not-contact list by hand and its holes closed: `renewals optout add|remove|list|import` and
`/operators/optouts…` with who/why/when (addresses only masked, never in clear); a STOP or the robot's
do-not-contact that arrives after the journey ended still reaches the list; an operator task for a
listed client is not opened (the journey ends as opted out); an erasure's entry stays listed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from renewals.db.database import Database
from renewals.db.tables import OperatorTaskRow, OptOutChangeRow
from renewals.delivery import OptOuts
from renewals.intake.portfolio_store import upsert_policy
from renewals.journey_api import EventType, JourneyEvent, JourneyStatus, Stage
from renewals.models import Channel
from renewals.optout_register import Register, RegisterRefused, parse_address
from renewals.settings import Settings
from renewals.webhooks.app import create_app
from renewals.webhooks.auth import sign
from starter.ops import ops
from tests.factories import policy
from tests.harness import INTAKE, journey_harness, msk
from workflows.renewal import RenewalJourney
from workflows.renewal_sends import TASK_REFUSED_OPTED_OUT

AUTH = {"Authorization": "Bearer op-secret"}
PHONE = "+79161234567"


def test_addresses_are_read_as_journeys_hold_them_or_refused_masked() -> None:
    assert parse_address("8 (916) 123-45-67") == parse_address("+7 916 123 45 67")
    assert parse_address("8 (916) 123-45-67").value == PHONE
    assert parse_address(" Ivan@Example.ORG ").value == "ivan@example.org"
    assert {parse_address(a).value for a in ("vk:1234567", "id1234567", "https://vk.com/id1234567")} == {
        "1234567"
    }
    for bad, says in (
        ("89161234567", "ambiguous"),  # a phone without + or a VK id?
        ("ivan@", "is not an e-mail address"),
        ("phone:12", "phone number"),
        ("", "an address is required"),
    ):
        with pytest.raises(RegisterRefused, match=says) as refused:
            parse_address(bad)
        assert "89161234567" not in str(refused.value) and "9161234567" not in str(refused.value)


async def test_cli_add_list_remove_import(
    sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=sqlite_db.url)
    opt_outs = OptOuts(sqlite_db)
    assert (
        await ops(
            ["optout", "add", "8 916 123-45-67", "--reason", "просил по телефону", "--by", "Оля"], settings
        )
        == 0
    )
    assert "listed +7916***4567 (phone) by Оля: просил по телефону" in capsys.readouterr().out
    assert await opt_outs.reason(PHONE) == "просил по телефону"  # what every send checks
    assert await ops(["optout", "add", PHONE, "--reason", "ещё раз", "--by", "Петя"], settings) == 0
    assert "was already listed" in capsys.readouterr().out
    assert await ops(["optout", "add", "89161234567", "--reason", "x", "--by", "Оля"], settings) == 2
    assert "ambiguous" in capsys.readouterr().err
    assert await ops(["optout", "add", PHONE, "--reason", " ", "--by", "Оля"], settings) == 2
    assert "a reason is required" in capsys.readouterr().err

    assert await ops(["optout", "list"], settings) == 0
    listing = capsys.readouterr().out
    assert "+7916***4567" in listing and "Оля" in listing and "просил по телефону" in listing
    assert PHONE not in listing and "cli" in listing

    assert await ops(["optout", "remove", PHONE, "--reason", "дал согласие", "--by", "Петя"], settings) == 0
    assert "removed +7916***4567" in capsys.readouterr().out
    assert await opt_outs.reason(PHONE) is None
    assert await ops(["optout", "remove", PHONE, "--reason", "x", "--by", "Петя"], settings) == 2
    assert "is not on the do-not-contact list" in capsys.readouterr().err
    assert await ops(["optout", "list", "--address", PHONE], settings) == 0
    history = capsys.readouterr().out
    assert "not listed" in history and "removed" in history and "дал согласие" in history
    assert "Петя" in history and "added" in history and PHONE not in history

    listed = tmp_path / "dnc.csv"
    listed.write_text(
        "address,reason\n# from the call centre\n+79031112233,жалоба\nanna@example.org\nvk:555\n"
        "12345\n\nphone:1\n",
        encoding="utf-8",
    )
    assert await ops(["optout", "import", str(listed), "--reason", "реестр", "--by", "Оля"], settings) == 1
    out, errors = capsys.readouterr()
    assert "3 listed, 0 already listed, 2 rejected" in out
    assert [line.split(": ", 1)[0] for line in errors.splitlines()] == [f"{listed}:6", f"{listed}:8"]
    assert await opt_outs.reason("+79031112233") == "жалоба"
    assert await opt_outs.reason("anna@example.org") == "реестр"
    assert await opt_outs.reason("555") == "реестр"
    entry = await opt_outs.entry("555")
    assert entry is not None and (entry.kind, entry.source, entry.added_by) == ("vk", "import", "Оля")
    assert (
        await ops(
            ["optout", "import", str(tmp_path / "missing.txt"), "--reason", "r", "--by", "Оля"], settings
        )
        == 2
    )
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("+79031112233,\xe9\n".encode("latin-1"))
    assert await ops(["optout", "import", str(binary), "--reason", "r", "--by", "Оля"], settings) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


async def test_an_erasure_entry_is_not_removed_by_hand(sqlite_db: Database) -> None:
    await OptOuts(sqlite_db).add([PHONE], "erasure request R-1", None, source="erasure")
    with pytest.raises(RegisterRefused, match="listed by an erasure request") as refused:
        await Register(sqlite_db).remove(PHONE, "передумал", "Оля", "cli")
    assert refused.value.status == 409
    assert await OptOuts(sqlite_db).reason(PHONE) == "erasure request R-1"


async def test_http_add_lookup_list_remove_import(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            change = {"address": "ivan@example.org", "reason": "письмо: не писать", "operator": "Оля"}
            assert (await http.post("/operators/optouts", json=change)).status_code == 401
            added = await http.post("/operators/optouts", json=change, headers=AUTH)
            assert added.status_code == 201, added.text
            entry = added.json()["entry"]
            assert (entry["kind"], entry["masked"], entry["by"], entry["source"]) == (
                "email",
                "i***@example.org",
                "Оля",
                "http",
            )
            assert entry["listed_at"]
            again = await http.post("/operators/optouts", json={**change, "operator": "Петя"}, headers=AUTH)
            assert again.status_code == 200 and again.json()["added"] is False
            assert again.json()["entry"]["by"] == "Оля"  # the first entry stays
            bad = await http.post(
                "/operators/optouts", json={**change, "address": "89161234567"}, headers=AUTH
            )
            assert bad.status_code == 422 and "89161234567" not in bad.text
            nameless = await http.post("/operators/optouts", json={**change, "operator": ""}, headers=AUTH)
            assert nameless.status_code == 422

            found = await http.post(
                "/operators/optouts/lookup", json={"address": "IVAN@example.org"}, headers=AUTH
            )
            assert found.status_code == 200 and found.json()["reason"] == "письмо: не писать"
            listing = await http.get("/operators/optouts", headers=AUTH)
            assert [e["masked"] for e in listing.json()] == ["i***@example.org"]
            assert "ivan@example.org" not in listing.text

            imported = await http.post(
                "/operators/optouts/import",
                json={
                    "entries": [{"address": PHONE, "reason": "STOP по телефону"}, {"address": "nope"}],
                    "reason": "реестр",
                    "operator": "Оля",
                },
                headers=AUTH,
            )
            assert imported.status_code == 200
            assert imported.json()["added"] == 1 and [r["line"] for r in imported.json()["rejected"]] == [2]

            removed = await http.post(
                "/operators/optouts/remove",
                json={"address": "ivan@example.org", "reason": "согласие", "operator": "Петя"},
                headers=AUTH,
            )
            assert removed.status_code == 200
            gone = await http.post(
                "/operators/optouts/lookup", json={"address": "ivan@example.org"}, headers=AUTH
            )
            assert gone.status_code == 404
            missing = await http.post(
                "/operators/optouts/remove",
                json={"address": "ivan@example.org", "reason": "согласие", "operator": "Петя"},
                headers=AUTH,
            )
            assert missing.status_code == 404
            changes = (await http.get("/operators/optouts/changes", headers=AUTH)).json()
            assert [(c["action"], c["by"], c["reason"]) for c in changes if c["kind"] == "email"] == [
                ("removed", "Петя", "согласие"),
                ("added", "Оля", "письмо: не писать"),
            ]


@pytest.mark.parametrize(
    ("source", "payload"),
    [
        ("sms", {"type": "reply", "text": "СТОП"}),
        ("robot", {"outcome": "do_not_contact"}),
    ],
)
async def test_an_opt_out_after_the_journey_ended_reaches_the_list(
    tmp_path: Path, source: str, payload: dict[str, str]
) -> None:
    async with journey_harness(tmp_path) as h:
        p = policy("KASKO", number=f"LATE-{source}")
        await upsert_policy(h.db, p)
        handle = await h.start(p, INTAKE)
        await h.skip_to(msk(3, 7))  # the −45 SMS went out
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.PAYMENT_RECEIVED))
        assert (await handle.result()).stage is Stage.PAID
        opt_outs = OptOuts(h.db)
        assert await opt_outs.reason(PHONE) is None
        secrets = {source: "s3cret", "operators": "op-secret"}
        app = create_app(h.db, h.env.client, secrets)
        body = json.dumps({"event_id": f"{source}-late-1", "journey_id": handle.id, **payload}).encode()
        headers = {"Content-Type": "application/json", "X-Signature": sign("s3cret", body)}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wh") as http:
            answer = await http.post(f"/webhooks/{source}", content=body, headers=headers)
            assert answer.status_code == 200 and answer.json()["status"] == "journey_finished"
            repeat = await http.post(f"/webhooks/{source}", content=body, headers=headers)
            assert repeat.json()["status"] == "duplicate"
        for address in (PHONE, "ivan@example.org", "1234567"):  # the client's every address
            entry = await opt_outs.entry(address)
            assert entry is not None, address
            assert (entry.source, entry.journey_id) == (f"webhook:{source}", handle.id)
            assert entry.reason.endswith("after the journey ended")
        async with h.db.session() as session:
            changes = (await session.execute(select(func.count()).select_from(OptOutChangeRow))).scalar_one()
        assert changes == 3  # listed once, the repeat changed nothing


async def test_a_listed_client_gets_no_operator_task(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        await Register(h.db).add(PHONE, "просил не звонить", "Оля", "cli")
        p = policy("KASKO", number="LISTED-1", renewal_centre=True)
        started = await h.start(p, msk(4, 3, 8))  # late intake on day −17: the task is the first thing due
        handle = h.env.client.get_workflow_handle(started.id, result_type=JourneyStatus)
        await h.skip_to(msk(4, 3, 12))  # the window opened at 09:00 (a Saturday)
        final = await handle.result()
        async with h.db.session() as session:
            tasks = (await session.execute(select(func.count()).select_from(OperatorTaskRow))).scalar_one()
    assert tasks == 0
    assert final.stage is Stage.OPTED_OUT
    assert ("finished: opted_out", TASK_REFUSED_OPTED_OUT) in [(e.type, e.detail) for e in final.events]
    [task] = [e for e in final.timeline if e.channel is Channel.OPERATOR_TASK]
    assert task.status.value == "suppressed"
    assert (task.reason or "").startswith("OptedOut: просил не звонить")


async def test_migration_0007_closes_tasks_of_ended_journeys_and_names_sources(tmp_path: Path) -> None:
    from sqlalchemy import text

    from renewals.db.tables import OptOutRow
    from tests.conftest import database_at

    async with database_at("sqlite", tmp_path, "0006") as db:
        async with db.engine.begin() as connection:
            for journey, stage in (("renewal-A-20270420", "paid"), ("renewal-B-20270420", "operator")):
                await connection.execute(
                    text(
                        "INSERT INTO journeys (id, policy_number, expires_on, agent_id, product, stage,"
                        " updated_at) VALUES (:id, 'A', '2027-04-20', 'A1', 'KASKO', :stage,"
                        " '2027-04-01 00:00:00')"
                    ),
                    {"id": journey, "stage": stage},
                )
                await connection.execute(
                    text(
                        "INSERT INTO operator_tasks (dedup_key, journey_id, policy_number, centre_id, reason,"
                        " text, status, created_at) VALUES (:key, :id, 'A', 'msk', 'r', 't', 'open',"
                        " '2027-04-03 10:00:00')"
                    ),
                    {"key": f"{journey}:task", "id": journey},
                )
            for key, reason, journey in (("h1", "erasure request R-1", None), ("h2", "opt_out (sms)", "j")):
                await connection.execute(
                    text(
                        "INSERT INTO opt_outs (address_hash, reason, journey_id, created_at)"
                        " VALUES (:key, :reason, :journey, '2027-04-01 00:00:00')"
                    ),
                    {"key": key, "reason": reason, "journey": journey},
                )
        await db.migrate()
        async with db.session() as session:
            tasks = {r.journey_id: r for r in (await session.scalars(select(OperatorTaskRow))).all()}
            sources = {r.address_hash: r.source for r in (await session.scalars(select(OptOutRow))).all()}
    ended, running = tasks["renewal-A-20270420"], tasks["renewal-B-20270420"]
    assert (ended.status, ended.closed_reason) == ("closed", "the journey ended: paid")
    assert (running.status, running.closed_reason) == ("open", None)
    assert sources == {"h1": "erasure", "h2": "journey"}

"""The agent dashboard and the journey funnel on a known data set: exact numbers, terminal tables, and
self-contained HTML pages (inline SVG, nothing fetched from anywhere)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console

from renewals.db.database import Database
from renewals.db.tables import AgentRow, JourneyRow, OperatorTaskRow, OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.models import Line
from renewals.reports.dashboard import agent_dashboard, dashboard_html, dashboard_table
from renewals.reports.funnel import funnel_html, funnel_tables, journey_funnel
from renewals.settings import Settings
from starter.ops import ops

NOW = datetime(2027, 3, 1, tzinfo=UTC)

# (agent, product, stage)
JOURNEYS = [
    ("A1", "KASKO", "paid"),
    ("A1", "KASKO", "renewed"),
    ("A1", "KASKO", "lapsed"),
    ("A1", "KASKO_OSAGO", "paid"),  # counts for КАСКО and ОСАГО
    ("A1", "OSAGO", "refused"),
    ("A1", "OSAGO", "cancelled"),  # excluded
    ("A1", "MORTGAGE", "paid"),  # no line, no norm
    ("A1", "IFL", "paid"),
    ("A1", "KASKO", "operator"),  # still running: excluded
    ("A2", "IFL", "opted_out"),
]


async def load_dashboard_data(db: Database) -> None:
    async with db.session() as session, session.begin():
        session.add(
            AgentRow(
                id="A1",
                name="Петрова Анна",
                phone="+79031112233",
                rate_kasko=0.8,
                rate_osago=0.7,
                rate_ifl=0.85,
            )
        )
        session.add(AgentRow(id="A2", name="Сидоров Пётр", phone="+79035556677"))
        for n, (agent, product, stage) in enumerate(JOURNEYS):
            session.add(
                JourneyRow(
                    id=f"renewal-D{n}-20270420",
                    policy_number=f"D{n}",
                    expires_on=date(2027, 4, 20),
                    agent_id=agent,
                    product=product,
                    stage=stage,
                    updated_at=NOW,
                )
            )


async def test_dashboard_numbers_on_a_known_data_set(sqlite_db: Database, tmp_path: Path) -> None:
    await load_dashboard_data(sqlite_db)
    items = {(i.agent_id, i.line): i for i in await agent_dashboard(sqlite_db)}
    numbers = {key: (i.secured, i.lost, i.rate, i.meets_norm, i.gate_suppresses) for key, i in items.items()}
    assert numbers == {
        ("A1", Line.KASKO): (3, 1, 0.75, True, True),  # 75 % meets the 75 % norm; card 80 % → gate on
        ("A1", Line.OSAGO): (1, 1, 0.5, False, False),  # card 70 % < 75 % → company SMS sent
        ("A1", Line.IFL): (1, 0, 1.0, True, True),
        ("A2", Line.KASKO): (0, 0, None, None, False),
        ("A2", Line.OSAGO): (0, 0, None, None, False),
        ("A2", Line.IFL): (0, 1, 0.0, False, False),
    }

    console = Console(record=True, width=160)
    console.print(dashboard_table(list(items.values())))
    text = console.export_text()
    assert "Дашборд агента. Возобновления" in text and "75%" in text and "suppressed" in text

    page = dashboard_html(list(items.values()))
    assert "<svg" in page and "норматив 75%" in page
    assert not re.search(r"(src|href)=\"https?://", page)  # no CDN, nothing fetched


async def load_funnel_data(db: Database) -> None:
    def outbox(journey: str, touchpoint: str, channel: str, status: str) -> OutboxRow:
        return OutboxRow(
            dedup_key=f"{journey}:{touchpoint}:{channel}",
            journey_id=journey,
            touchpoint=touchpoint,
            channel=channel,
            template=f"t_{touchpoint}",
            status=status,
            created_at=NOW,
            updated_at=NOW,
        )

    def fact(n: int, journey: str, channel: str, touchpoint: str | None, kind: str) -> WebhookEventRow:
        return WebhookEventRow(
            source=channel,
            event_id=f"e{n}",
            journey_id=journey,
            channel=channel,
            touchpoint=touchpoint,
            kind=kind,
            processed=True,
            received_at=NOW,
        )

    def task(journey: str, reason: str, outcome: str | None) -> OperatorTaskRow:
        return OperatorTaskRow(
            dedup_key=f"{journey}:op",
            journey_id=journey,
            policy_number="P",
            centre_id="msk",
            reason=reason,
            text="…",
            status="closed" if outcome else "open",
            outcome=outcome,
            created_at=NOW,
        )

    def journey(journey_id: str, stage: str) -> JourneyRow:
        return JourneyRow(
            id=journey_id,
            policy_number=journey_id,
            expires_on=date(2027, 4, 20),
            agent_id="A1",
            product="KASKO",
            stage=stage,
            updated_at=NOW,
        )

    async with db.session() as session, session.begin():
        session.add_all(
            [
                outbox("j1", "d-30-email", "email", "sent"),
                outbox("j1", "d-30-sms", "sms", "sent"),
                outbox("j1", "d-30-vk", "vk", "suppressed"),
                outbox("j2", "d-45-sms", "sms", "sent"),
                outbox("j3", "d-45-sms", "sms", "failed"),
                fact(1, "j1", "email", "d-30-email", "delivered"),
                fact(2, "j1", "email", "d-30-email", "opened"),
                fact(3, "j1", "sms", "d-30-sms", "delivered"),
                fact(4, "j2", "sms", "d-45-sms", "delivered"),
                fact(5, "j5", "robot_call", None, "agreed"),
                fact(6, "j5", "robot_call", None, "no_answer"),
                fact(7, "j6", "vk", None, "read"),
                task("j1", "отклик на звонок Робота Даши: agreed", "reached_renewing"),
                task("j4", "Робот Даша прекратил обзвон (−17)", None),
                journey("j1", "paid"),
                journey("j2", "renewed"),
                journey("j3", "lapsed"),
                journey("j5", "paid"),
                journey("j6", "paid"),
                journey("j7", "renewed"),
                journey("j8", "operator"),  # still running
                journey("j9", "informing"),  # still running
            ]
        )


async def test_funnel_numbers_on_a_known_data_set(sqlite_db: Database) -> None:
    await load_funnel_data(sqlite_db)
    funnel = await journey_funnel(sqlite_db)
    rows = {
        (r.channel, r.touchpoint): (r.sent, r.delivered, r.engaged, r.suppressed, r.failed)
        for r in funnel.rows
    }
    assert rows == {
        ("email", "d-30-email"): (1, 1, 1, 0, 0),
        ("sms", "d-45-sms"): (1, 1, 0, 0, 1),
        ("sms", "d-30-sms"): (1, 1, 0, 0, 0),
        ("vk", "d-30-vk"): (0, 0, 0, 1, 0),
        ("vk", "—"): (0, 0, 1, 0, 0),  # a read reported by policy number, not by message
    }
    assert [(r.channel, r.touchpoint) for r in funnel.rows][:3] == [
        ("email", "d-30-email"),
        ("sms", "d-45-sms"),
        ("sms", "d-30-sms"),
    ]  # the journey's order within a channel
    assert funnel.robot_contacts == 2  # j5 (robot webhook) and j1 (task opened on the robot's contact)
    assert funnel.robot_outcomes == {"agreed": 1, "no_answer": 1}
    assert funnel.handoffs == 2
    assert funnel.operator_outcomes == {"reached_renewing": 1, "open": 1}
    assert funnel.stages == {"paid": 3, "renewed": 2, "lapsed": 1, "operator": 1, "informing": 1}
    assert funnel.secured_by_path == {
        "operator": 1,
        "robot": 1,
        "engaged": 1,
        "informed": 1,
        "agent alone": 1,
    }

    console = Console(record=True, width=160)
    console.print(funnel_tables(funnel))
    text = console.export_text()
    assert "secured via operator" in text
    stage_lines = [
        line.strip("│ ").split("│")[0].strip() for line in text.splitlines() if "journeys " in line
    ]
    assert stage_lines == [  # finished by how they ended; running ones by where they are, in order
        "journeys finished lapsed",
        "journeys finished paid",
        "journeys finished renewed",
        "journeys in progress at stage informing",
        "journeys in progress at stage operator",
    ]
    page = funnel_html(funnel)
    assert "<svg" in page and "email opened/read/replied" in page
    assert "journeys in progress at stage operator" in page and "journeys finished operator" not in page
    assert not re.search(r"(src|href)=\"https?://", page)


async def test_cli_writes_both_html_pages(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/reports.db")
    db = Database(settings.database_url)
    await db.migrate()
    await load_dashboard_data(db)
    await load_funnel_data(db)
    await db.dispose()
    assert await ops(["dashboard", "--html", str(tmp_path / "dashboard.html")], settings) == 0
    assert await ops(["funnel", "--html", str(tmp_path / "funnel.html")], settings) == 0
    assert "<svg" in (tmp_path / "dashboard.html").read_text(encoding="utf-8")
    assert "Воронка" in (tmp_path / "funnel.html").read_text(encoding="utf-8")

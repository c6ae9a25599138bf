"""The journey funnel: what went out (outbox), what the providers said happened to it (webhook facts),
robot contacts, operator hand-offs, and how the secured renewals were secured.

Path of a secured renewal, first that applies: `operator` (a task closed as reached_renewing),
`robot` (the client answered Робот Даша: agreed/refused/callback), `engaged` (opened an e-mail,
read VK, replied to an SMS), `informed` (at least one message sent), `agent alone` (nothing was sent —
e.g. the gate trusted the agent — and the renewal came anyway).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from sqlalchemy import func, select

from renewals.db.database import Database
from renewals.db.tables import JourneyRow, OperatorTaskRow, OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.journey_api import ROBOT_CONTACTS, SECURED_STAGES, TERMINAL_STAGES, Stage
from renewals.reports.html import Bar, bar_chart, page, table
from renewals.sla.models import SLA_ID_PREFIX

ENGAGED_KINDS = frozenset({"opened", "read", "reply", "replied", "opt_out"})
ROBOT_CONTACT_KINDS = frozenset(outcome.value for outcome in ROBOT_CONTACTS)
ROBOT_TASK_REASON = "отклик на звонок Робота"
PATHS = ("operator", "robot", "engaged", "informed", "agent alone")
MESSAGE_COLUMNS = (
    "channel", "touchpoint", "template", "sent", "delivered", "opened/read/replied", "suppressed", "failed",
)  # fmt: skip
_OUTBOX_GROUP = (OutboxRow.channel, OutboxRow.touchpoint, OutboxRow.template, OutboxRow.status)
_PROGRESS = [s.value for s in Stage if s not in TERMINAL_STAGES]  # scheduled → … → final_reminder


@dataclass
class FunnelRow:
    channel: str
    touchpoint: str
    template: str
    sent: int = 0
    suppressed: int = 0
    failed: int = 0
    delivered: int = 0
    engaged: int = 0  # opened (e-mail), read (VK), replied (SMS)


@dataclass
class Funnel:
    rows: list[FunnelRow] = field(default_factory=list)
    robot_outcomes: Counter[str] = field(default_factory=Counter)
    robot_contacts: int = 0  # journeys in which the client answered Робот Даша
    handoffs: int = 0
    operator_outcomes: Counter[str] = field(default_factory=Counter)  # "open" for tasks not closed yet
    stages: Counter[str] = field(default_factory=Counter)
    secured_by_path: Counter[str] = field(default_factory=Counter)


async def journey_funnel(db: Database) -> Funnel:
    funnel = Funnel()
    async with db.session() as session:
        # the outbox also holds the partner SLA's notices (`sla-…` journeys): not renewal messages
        renewal = OutboxRow.journey_id.not_like(f"{SLA_ID_PREFIX}%")
        sent = (
            await session.execute(
                select(*_OUTBOX_GROUP, func.count()).where(renewal).group_by(*_OUTBOX_GROUP)
            )
        ).all()
        facts = (
            await session.execute(
                select(WebhookEventRow.journey_id, WebhookEventRow.channel, WebhookEventRow.touchpoint,
                       WebhookEventRow.kind)
            )
        ).all()  # fmt: skip
        tasks = (
            await session.execute(
                select(OperatorTaskRow.journey_id, OperatorTaskRow.reason, OperatorTaskRow.outcome)
            )
        ).all()
        journeys = (await session.execute(select(JourneyRow.id, JourneyRow.stage))).all()
        informed = set(
            # A call Робот Даша placed is not a message the client read: it counts on its own path.
            (
                await session.scalars(
                    select(OutboxRow.journey_id).where(
                        renewal, OutboxRow.status == "sent", OutboxRow.channel != "robot_call"
                    )
                )
            ).all()
        )

    rows: dict[tuple[str, str], FunnelRow] = {}
    for channel, touchpoint, template, status, count in sent:
        row = rows.setdefault((channel, touchpoint), FunnelRow(channel, touchpoint, template))
        if status in ("sent", "suppressed", "failed"):
            setattr(row, status, getattr(row, status) + count)
    robot_contacts: set[str] = set()
    engaged: set[str] = set()
    for journey, medium, fact_point, kind in facts:
        if medium == "robot_call":
            funnel.robot_outcomes[kind] += 1
            if kind in ROBOT_CONTACT_KINDS:
                robot_contacts.add(journey)
            continue
        if medium not in ("sms", "email", "vk"):
            continue
        point = fact_point or "—"
        row = rows.setdefault((medium, point), FunnelRow(medium, point, "—"))
        if kind == "delivered":
            row.delivered += 1
        elif kind in ENGAGED_KINDS:
            row.engaged += 1
            engaged.add(journey)
    funnel.rows = sorted(rows.values(), key=lambda r: (r.channel, _day(r.touchpoint), r.touchpoint))

    closed_reached: set[str] = set()
    for journey, reason, outcome in tasks:
        funnel.handoffs += 1
        funnel.operator_outcomes[outcome or "open"] += 1
        if outcome == "reached_renewing":
            closed_reached.add(journey)
        if reason.startswith(ROBOT_TASK_REASON):
            robot_contacts.add(journey)
    funnel.robot_contacts = len(robot_contacts)

    for journey, stage in journeys:
        funnel.stages[stage] += 1
        if stage in SECURED_STAGES:
            if journey in closed_reached:
                path = "operator"
            elif journey in robot_contacts:
                path = "robot"
            elif journey in engaged:
                path = "engaged"
            elif journey in informed:
                path = "informed"
            else:
                path = "agent alone"
            funnel.secured_by_path[path] += 1
    return funnel


def _day(touchpoint: str) -> int:
    """d-45-sms → −45, so touchpoints sort in the journey's order."""
    try:
        return int(touchpoint[1:].rsplit("-", 1)[0])
    except ValueError:
        return 0


def _stage_rows(funnel: Funnel) -> list[tuple[str, str]]:
    """Journeys by stage: finished ones by how they ended, then those still running by where they are
    (a journey at the operator stage has not finished anything yet)."""
    finished = sorted((s, n) for s, n in funnel.stages.items() if s in TERMINAL_STAGES)
    running = sorted(
        ((s, n) for s, n in funnel.stages.items() if s not in TERMINAL_STAGES),
        key=lambda item: (_PROGRESS.index(item[0]) if item[0] in _PROGRESS else len(_PROGRESS), item[0]),
    )
    return [(f"journeys finished {s}", str(n)) for s, n in finished] + [
        (f"journeys in progress at stage {s}", str(n)) for s, n in running
    ]


def _message_rows(funnel: Funnel) -> list[list[str]]:
    return [
        [r.channel, r.touchpoint, r.template]
        + [str(n) for n in (r.sent, r.delivered, r.engaged, r.suppressed, r.failed)]
        for r in funnel.rows
    ]


def _other_rows(funnel: Funnel) -> list[list[str]]:
    rows = [["robot contacts (journeys)", str(funnel.robot_contacts)]]
    rows += [[f"  robot outcome {k}", str(v)] for k, v in sorted(funnel.robot_outcomes.items())]
    rows += [["operator hand-offs", str(funnel.handoffs)]]
    rows += [[f"  operator {k}", str(v)] for k, v in sorted(funnel.operator_outcomes.items())]
    rows += [list(row) for row in _stage_rows(funnel)]
    rows += [[f"secured via {p}", str(funnel.secured_by_path.get(p, 0))] for p in PATHS]
    return rows


def funnel_tables(funnel: Funnel) -> Group:
    messages = Table(title="Messages per channel and touchpoint")
    for column in MESSAGE_COLUMNS:
        messages.add_column(
            column, justify="left" if column in ("channel", "touchpoint", "template") else "right"
        )
    for message_row in _message_rows(funnel):
        messages.add_row(*message_row)
    rest = Table(title="Contacts and outcomes")
    rest.add_column("what")
    rest.add_column("count", justify="right")
    for other_row in _other_rows(funnel):
        rest.add_row(*other_row)
    return Group(messages, rest)


def funnel_html(funnel: Funnel) -> str:
    by_channel: dict[str, list[int]] = {}
    for r in funnel.rows:
        totals = by_channel.setdefault(r.channel, [0, 0, 0])
        totals[0] += r.sent
        totals[1] += r.delivered
        totals[2] += r.engaged
    bars: list[Bar] = []
    for channel, (sent, delivered, engaged) in sorted(by_channel.items()):
        bars += [
            Bar(f"{channel} sent", sent, "#3b6fb6", str(sent)),
            Bar(f"{channel} delivered", delivered, "#5a9bd5", str(delivered)),
            Bar(f"{channel} opened/read/replied", engaged, "#1b7f3b", str(engaged)),
        ]
    maximum = max((b.value for b in bars), default=0)
    body = (
        bar_chart(bars, float(maximum))
        + table(list(MESSAGE_COLUMNS), _message_rows(funnel))
        + table(["what", "count"], [[what.strip(), count] for what, count in _other_rows(funnel)])
    )
    return page("Воронка пролонгаций", body)

"""The partner SLA's notices through real channels, each exactly once.

Two applications on the time-skipping server with the production notifier (`ChannelNotifier`): its
e-mail and SMS go through the renewal journey's send path (outbox + recording providers), and its
partner-cabinet webhook through the real `PartnerCabinet` against `httpx.MockTransport`. Every
provider *loses its first answer* for each message (it took the message, the answer never came),
so every notice is an activity retry — and still reaches its destination once:

- `mail-1` (not urgent): the calculation warning and hand-over e-mailed to the stage's responsible
  person (Анна), the issuance ones to the payment role's mailbox (Вера has no address), and the
  repeated breach's process flag as a signed webhook to the partner cabinet;
- `urg-1` (urgent): its warnings and hand-overs by SMS to the urgent line.

Then, without the server: a notice already sent is not sent again, a 4xx from the cabinet is kept as
failed and reported in the finding, and a production configuration without destinations is refused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.renewal import JourneyActivities
from activities.sla import SlaActivities, SlaNoticeConfigError, production_notifier
from renewals.activity_io import SendRequest
from renewals.channels.base import Channels, Delivery, Provider
from renewals.channels.errors import ProviderUnavailable
from renewals.channels.factory import recording_channels
from renewals.db.database import Database
from renewals.db.tables import OutboxRow, SandboxMessageRow
from renewals.models import Channel
from renewals.settings import Settings
from renewals.sla.models import (
    ApplicationInput,
    ApplicationStatus,
    Duty,
    EscalationStepName,
    Responsible,
    SlaStatus,
    StatusChange,
    application_workflow_id,
)
from renewals.sla.notices import CabinetOutbox, ChannelNotifier, EscalationNotice, PartnerCabinet
from renewals.sla.notices_config import PartnerCabinetConfig, SlaContacts
from renewals.sla.targets import SlaTargets
from renewals.webhooks.auth import authentic
from starter.sla.operations import change_status, start_application
from starter.sla.simulate import register_sla_search_attributes, sla_worker
from tests.sla_support import move_clock_to, query_until, time_skipping_env
from workflows.sla import PartnerApplication

QUEUE = "sla-notices"
PARTNER = "realty-n"
CABINET_URL = "https://cabinet.partner.test/notices"
CABINET_SECRET = "cabinet-secret"
CONTACTS = SlaContacts(
    people={"Анна": "anna@agency.test"},
    roles={Duty.PAYMENT: "payments@agency.test"},
    duty_email="duty@agency.test",
    urgent_phone="+7 916 123-45-67",
    partner_cabinet=PartnerCabinetConfig(url=CABINET_URL, secret=SecretStr(CABINET_SECRET)),
)


class LosesFirstAnswer:
    """A provider that takes each message, but whose first answer per key never arrives."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.reconciles = inner.reconciles
        self.calls: Counter[str] = Counter()

    async def deliver(self, request: SendRequest, accepted_by: str | None = None) -> Delivery:
        self.calls[request.dedup_key] += 1
        delivery = await self.inner.deliver(request, accepted_by)
        if self.calls[request.dedup_key] == 1:
            raise ProviderUnavailable("answer lost", provider=self.name, maybe_accepted=True)
        return delivery

    async def find(self, request: SendRequest, accepted_by: str | None = None) -> Delivery | None:
        return await self.inner.find(request, accepted_by)


@dataclass
class Cabinet:
    """The partner cabinet behind MockTransport: it keeps one notice per Idempotency-Key, as its
    contract says; the first request of each key is taken and its answer lost (a read timeout)."""

    status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status >= 400:
            return httpx.Response(self.status, json={"error": "refused"})
        key = request.headers["Idempotency-Key"]
        first = key not in self.notices
        self.notices.setdefault(key, json.loads(request.content))
        if first:
            raise httpx.ReadTimeout("answer lost", request=request)
        return httpx.Response(200, json={"id": key})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


@dataclass
class Journeys:
    env: WorkflowEnvironment
    db: Database
    email: LosesFirstAnswer
    sms: LosesFirstAnswer
    cabinet: Cabinet
    mail: ApplicationStatus | None = None
    urgent: ApplicationStatus | None = None


def lossy_channels(db: Database) -> tuple[Channels, LosesFirstAnswer, LosesFirstAnswer]:
    base = recording_channels(db)
    email, sms = (
        LosesFirstAnswer(base.providers[Channel.EMAIL]),
        LosesFirstAnswer(base.providers[Channel.SMS]),
    )
    return Channels({**base.providers, Channel.EMAIL: email, Channel.SMS: sms}, base.portal), email, sms


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journeys(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Journeys]:
    path: Path = tmp_path_factory.mktemp("sla-notices") / "sla.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    channels, email, sms = lossy_channels(db)
    cabinet = Cabinet()
    notifier = ChannelNotifier(
        CONTACTS,
        JourneyActivities(db, channels).send,
        CabinetOutbox(db, PartnerCabinet(CONTACTS.partner_cabinet or _no(), client=cabinet.client())),
    )
    async for env in time_skipping_env():
        await register_sla_search_attributes(env.client)
        async with sla_worker(env.client, QUEUE, SlaActivities(db, notifier, urgent_line="duty-line")):
            state = Journeys(env, db, email, sms, cabinet)
            await _run(state)
            yield state
    await db.dispose()


def _no() -> PartnerCabinetConfig:
    raise AssertionError("the contacts name a cabinet")


async def _run(state: Journeys) -> None:
    env = state.env
    submitted = await move_clock_to(env, "2027-04-14T10:00")  # a Wednesday
    people = Responsible(client_contact="Анна", payment="Вера")
    for app_id, urgent in (("mail-1", False), ("urg-1", True)):
        await start_application(
            env.client,
            ApplicationInput(
                id=app_id,
                partner=PARTNER,
                urgent=urgent,
                clocks=SlaTargets().clocks(),
                responsible=people,
                submitted_at=submitted,
            ),
            QUEUE,
        )
    mail = env.client.get_workflow_handle_for(
        PartnerApplication.run, application_workflow_id(PARTNER, "mail-1")
    )
    urgent = env.client.get_workflow_handle_for(
        PartnerApplication.run, application_workflow_id(PARTNER, "urg-1")
    )

    def handed_over(count: int) -> Any:
        return lambda s: (
            sum(e.step is EscalationStepName.HAND_OVER and e.at is not None for e in s.escalations) == count
        )

    await move_clock_to(env, "2027-04-14T10:30")  # warnings at 10:10, breaches at 10:15
    await query_until(mail, handed_over(1))
    await query_until(urgent, handed_over(2))  # the urgent reaction's and the calculation's
    for status in (SlaStatus.CALCULATED, SlaStatus.PAID):
        await change_status(env.client, PARTNER, "mail-1", StatusChange(status=status, by="cabinet"))
    await change_status(env.client, PARTNER, "urg-1", StatusChange(status=SlaStatus.CANCELLED, by="cabinet"))
    await move_clock_to(env, "2027-04-14T13:30")  # issuance: warning 11:30, breach 12:30 — a repeat
    await query_until(mail, lambda s: s.process_flag and handed_over(2)(s))
    await change_status(env.client, PARTNER, "mail-1", StatusChange(status=SlaStatus.ISSUED, by="cabinet"))
    state.mail, state.urgent = await mail.result(), await urgent.result()


async def outbox(db: Database, journey: str) -> dict[str, OutboxRow]:
    async with db.session() as session:
        rows = (await session.scalars(select(OutboxRow).where(OutboxRow.journey_id == journey))).all()
    return {row.dedup_key.removeprefix(f"{journey}:"): row for row in rows}


async def accepted(db: Database) -> Counter[str]:
    """What the recording providers took, per dedup key (their 'provider side')."""
    async with db.session() as session:
        keys = (await session.scalars(select(SandboxMessageRow.dedup_key))).all()
    return Counter(keys)


async def test_responsible_person_gets_each_email_once_across_a_retry(journeys: Journeys) -> None:
    journey = application_workflow_id(PARTNER, "mail-1")
    rows = await outbox(journeys.db, journey)
    emails = {key: (row.recipient, row.status) for key, row in rows.items() if row.channel == "email"}
    assert emails == {
        "sla-calculation-warning:email": ("anna@agency.test", "sent"),
        "sla-calculation-hand_over:email": ("anna@agency.test", "sent"),
        "sla-issuance-warning:email": ("payments@agency.test", "sent"),  # Вера: the role's mailbox
        "sla-issuance-hand_over:email": ("payments@agency.test", "sent"),
    }
    taken = await accepted(journeys.db)
    for key in emails:
        full = f"{journey}:{key}"
        assert journeys.email.calls[full] == 2, "the first answer was lost: the activity retried"
        assert taken[full] == 1, "the retry carried the same key: the provider kept one message"
    warning = rows["sla-calculation-warning:email"]
    assert warning.text is not None and warning.text.startswith("warning: application mail-1 (realty-n)")
    assert journeys.mail is not None
    assert not any("not delivered" in (s.finding or "") for s in journeys.mail.escalations)


async def test_urgent_line_gets_each_sms_once(journeys: Journeys) -> None:
    journey = application_workflow_id(PARTNER, "urg-1")
    rows = await outbox(journeys.db, journey)
    sms = {key: row.recipient for key, row in rows.items() if row.channel == "sms"}
    assert sms == {
        "sla-urgent_reaction-warning:sms": "+79161234567",
        "sla-calculation-warning:sms": "+79161234567",
        "sla-urgent_reaction-hand_over:sms": "+79161234567",
        "sla-calculation-hand_over:sms": "+79161234567",
    }
    assert not any(row.channel == "email" for row in rows.values()), "urgent notices use the line only"
    taken = await accepted(journeys.db)
    assert all(taken[f"{journey}:{key}"] == 1 and journeys.sms.calls[f"{journey}:{key}"] == 2 for key in sms)
    assert journeys.urgent is not None
    hand_over = next(s for s in journeys.urgent.escalations if s.step is EscalationStepName.HAND_OVER)
    assert hand_over.channel == "urgent" and hand_over.finding is not None
    assert hand_over.finding.startswith("handed to duty-line:")


async def test_process_flag_is_one_signed_webhook_to_the_partner_cabinet(journeys: Journeys) -> None:
    journey = application_workflow_id(PARTNER, "mail-1")
    key = f"{journey}:sla-issuance-process_flag:partner_cabinet"
    cabinet = journeys.cabinet
    assert list(cabinet.notices) == [key], "one notice, kept once by its key"
    posts = [r for r in cabinet.requests if r.headers["Idempotency-Key"] == key]
    assert len(posts) == 2, "the first answer was lost: retried with the same key"
    assert posts[0].content == posts[1].content, "the retry is the same request"
    for post in posts:
        assert authentic(CABINET_SECRET, post.content, post.headers["X-Signature"], None, False)
        assert not authentic("another-secret", post.content, post.headers["X-Signature"], None, False)
    body = cabinet.notices[key]
    assert (
        body["kind"] == "process_flag" and body["application_id"] == "mail-1" and body["partner"] == PARTNER
    )
    assert "correct the process or open a dedicated support channel" in body["text"]
    row = (await outbox(journeys.db, journey))["sla-issuance-process_flag:partner_cabinet"]
    assert (row.status, row.provider) == ("sent", "partner-cabinet")
    assert journeys.mail is not None and journeys.mail.process_flag


# ---- without the server ----------------------------------------------------------------------


def notice(kind: str = "process_flag", channel: str = "partner", **extra: Any) -> EscalationNotice:
    return EscalationNotice(
        dedup_key=f"{PARTNER}/x-1/issuance/{kind}",
        kind=kind,
        to=PARTNER,
        text="breach #2 on application x-1",
        channel=channel,
        journey_id=application_workflow_id(PARTNER, "x-1"),
        application_id="x-1",
        partner=PARTNER,
        clock="issuance",
        due=datetime.fromisoformat("2027-04-14T12:30:00+03:00"),
        **extra,
    )


async def test_a_sent_notice_is_not_posted_again_and_a_4xx_is_kept_as_failed(sqlite_db: Database) -> None:
    ok = Cabinet()
    ok.notices["seen"] = {}  # not a first request: answered at once
    config = PartnerCabinetConfig(url=CABINET_URL, secret=SecretStr(CABINET_SECRET))

    class Answers(Cabinet):
        def handle(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(self.status, json={})

    answers = Answers()
    sender = CabinetOutbox(sqlite_db, PartnerCabinet(config, client=answers.client()))
    assert await sender.deliver(notice()) is None
    assert await sender.deliver(notice()) is None  # a retry of an activity that already sent it
    assert len(answers.requests) == 1

    answers.status = 403
    refused = notice(kind="hand_over")
    assert await sender.deliver(refused) == "CabinetRefused: partner-cabinet: HTTP 403"
    assert await sender.deliver(refused) == "CabinetRefused: partner-cabinet: HTTP 403"
    assert len(answers.requests) == 2, "a refused notice is never sent again"

    answers.status = 503
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):  # the activity retries it
        await sender.deliver(notice(kind="warning"))
    rows = await outbox(sqlite_db, application_workflow_id(PARTNER, "x-1"))
    assert {k: r.status for k, r in rows.items()} == {
        "sla-issuance-process_flag:partner_cabinet": "sent",
        "sla-issuance-hand_over:partner_cabinet": "failed",
        "sla-issuance-warning:partner_cabinet": "pending",
    }


async def test_a_refused_email_is_reported_in_the_finding_not_raised(sqlite_db: Database) -> None:
    """A permanent failure of a notice (here: no address the provider accepts) never fails the journey."""
    contacts = CONTACTS.model_copy(
        update={"people": {"Анна": "anna-at-agency"}}
    )  # bypasses validation on purpose
    send = JourneyActivities(sqlite_db, recording_channels(sqlite_db)).send
    notifier = ChannelNotifier(
        contacts, send, CabinetOutbox(sqlite_db, PartnerCabinet(CONTACTS.partner_cabinet or _no()))
    )
    env = ActivityEnvironment()
    failed = await env.run(
        notifier.notify, notice("warning", "responsible", person="Анна", duty=Duty.CLIENT_CONTACT)
    )
    assert failed == "InvalidEmail: not an e-mail address"
    rows = await outbox(sqlite_db, application_workflow_id(PARTNER, "x-1"))
    assert rows["sla-issuance-warning:email"].status == "failed"


def test_recipients_fall_back_from_person_to_role_to_duty_operator() -> None:
    assert CONTACTS.email_for("Анна", Duty.CLIENT_CONTACT) == "anna@agency.test"
    assert CONTACTS.email_for("Вера", Duty.PAYMENT) == "payments@agency.test"
    assert CONTACTS.email_for(None, Duty.DOCUMENTS) == "duty@agency.test"
    assert CONTACTS.urgent_phone == "+79161234567"  # stored in E.164


def test_contacts_refuse_bad_addresses_naming_the_key_not_the_value() -> None:
    with pytest.raises(ValueError, match=r"people\['Борис'\]: not an e-mail address") as bad:
        SlaContacts(people={"Борис": "boris-at-agency"})
    assert "boris-at-agency" not in str(bad.value)
    with pytest.raises(ValueError, match="urgent_phone: not a valid phone number"):
        SlaContacts(urgent_phone="12345")
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        PartnerCabinetConfig(url="ftp://cabinet", secret=SecretStr("s"))


async def test_production_refuses_to_start_without_destinations(sqlite_db: Database) -> None:
    send = JourneyActivities(sqlite_db, recording_channels(sqlite_db)).send
    production = Settings(channels="providers")
    with pytest.raises(
        SlaNoticeConfigError, match="needs the partner SLA's notice destinations: RENEWALS_SLA_CONTACTS"
    ):
        production_notifier(sqlite_db, production, send)
    partial = production.model_copy(update={"sla_contacts": SlaContacts(duty_email="duty@agency.test")})
    with pytest.raises(SlaNoticeConfigError) as missing:
        production_notifier(sqlite_db, partial, send)
    assert "urgent_phone" in str(missing.value) and "partner_cabinet" in str(missing.value)
    assert "duty_email" not in str(missing.value)
    assert isinstance(
        production_notifier(sqlite_db, production.model_copy(update={"sla_contacts": CONTACTS}), send),
        ChannelNotifier,
    )
    # The sandbox (gateway) needs no configuration: the fake gateway's cabinet receiver.
    sandbox = production_notifier(sqlite_db, Settings(channels="gateway"), send)
    cabinet = sandbox.contacts.partner_cabinet
    assert cabinet is not None and cabinet.url.endswith("/partner-cabinet/notices")


async def test_the_fake_gateway_cabinet_keeps_one_notice_per_key() -> None:
    """What `./run stack` shows: the gateway's receiver checks the sandbox signature, drops a repeat."""
    from fake_providers.app import Gateway, create_app
    from renewals.sla.notices_config import sandbox_contacts

    gateway = Gateway()
    transport = httpx.ASGITransport(app=create_app(gateway))
    config = sandbox_contacts("http://gateway").partner_cabinet or _no()
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        cabinet = PartnerCabinet(config, client=http)
        payload: dict[str, object] = {"partner": PARTNER, "kind": "process_flag", "text": "breach #2"}
        assert await cabinet.post("k-1", payload) == "k-1"
        assert await cabinet.post("k-1", payload) == "k-1"  # a retry
        forged = await http.post(config.url, content=b"{}", headers={"Idempotency-Key": "k-2"})
        assert forged.status_code == 401
    lines = gateway.log.records("partner_cabinet")
    assert [(line.key, line.deduplicated) for line in lines] == [("k-1", False), ("k-1", True)]
    assert lines[0].recipient == PARTNER and lines[0].meta["kind"] == "process_flag"

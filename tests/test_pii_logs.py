"""No log line, warning or error message quotes the sample client's personal data (152-FZ).

Everything Python logs at DEBUG (ours, the Temporal SDK's worker and activity loggers, SQLAlchemy,
the drivers), every warning, and what the process writes to stdout/stderr is captured while
(a) a renewal-centre КАСКО journey runs start to finish (SMS, e-mail, VK, robot, operator task),
(b) providers fail a send, permanently and transiently, with error texts that quote the address and
the message (the SDK logs each failure with its traceback), and (c) an import rejects rows with an
invalid phone and e-mail. None of the client's strings may appear; each test also proves that its
capture holds the run's log lines, so an empty capture cannot pass.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import warnings
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowUpdateFailedError

from fake_providers.config import FaultConfig
from renewals.activity_io import SendRequest
from renewals.channels.base import Channels, PermanentSendError, SingleProvider
from renewals.channels.errors import ErrorType, ProviderUnavailable
from renewals.channels.factory import build_channels
from renewals.channels.recording import DatabasePortal, RecordingMessages, ScriptedRobot
from renewals.db.database import Database
from renewals.db.tables import OperatorTaskRow, SandboxMessageRow
from renewals.intake.importer import import_file
from renewals.intake.rejects import ERROR_FIELD
from renewals.journey_api import EntryStatus, OperatorOutcome, OperatorOutcomeReport, Stage
from renewals.models import Channel
from renewals.privacy import redact, scrub_exception
from renewals.webhooks.app import create_app
from tests.factories import CLIENT, policy
from tests.harness import INTAKE, journey_harness, msk
from tests.test_delivery import sandbox_gateway
from workflows.renewal import RenewalJourney

PHONE, EMAIL, VK_ID = CLIENT["phone"], CLIENT["email"], CLIENT["vk_id"]
# Every string of the sample client that must never appear: the phone also as digits only, as
# SMSC and the robot write it; the name parts one by one.
SAMPLE = (
    PHONE,
    PHONE.lstrip("+"),
    EMAIL,
    VK_ID,
    CLIENT["last_name"],
    CLIENT["first_name"],
    CLIENT["patronymic"],
)
MASKED_PHONE = "+7916***4567"


def leaks(text: str) -> list[str]:
    return [value for value in SAMPLE if value in text]


def rendered(record: logging.LogRecord) -> str:
    """Everything a handler could print of a record: the message, its raw args and extras, and the
    traceback of `exc_info` with every chained exception."""
    parts = [record.getMessage(), repr(vars(record))]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def assert_no_leak(
    records: Iterable[logging.LogRecord],
    caught: Iterable[warnings.WarningMessage] = (),
    output: str = "",
    extra: Iterable[str] = (),
) -> None:
    found = {
        f"{record.name} {record.levelname}: {record.getMessage()[:200]}": leaked
        for record in records
        if (leaked := leaks(rendered(record)))
    }
    found |= {f"warning: {w.message}": leaked for w in caught if (leaked := leaks(str(w.message)))}
    found |= {f"output: {line[:200]}": leaked for line in output.splitlines() if (leaked := leaks(line))}
    found |= {f"message: {text[:200]}": leaked for text in extra if (leaked := leaks(text))}
    assert not found, found


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger without a level of its own
    return caplog


def test_the_check_finds_the_sample_client_in_clear() -> None:
    """The control: an unmasked line is caught, each of the client's strings by itself."""
    control = f"sent to {PHONE} / {EMAIL} / vk {VK_ID}: {CLIENT['last_name']} {CLIENT['first_name']}"
    assert set(leaks(control + CLIENT["patronymic"])) == set(SAMPLE)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sms to %s", (PHONE.lstrip("+"),), None)
    assert leaks(rendered(record)) == [PHONE.lstrip("+"), VK_ID]
    with pytest.raises(AssertionError):
        assert_no_leak([record])


@pytest.mark.parametrize(
    "spelling", [PHONE, PHONE.lstrip("+"), "8 (916) 123-45-67", "+7 916 123 45 67", "9161234567"]
)
def test_redact_masks_a_phone_in_any_spelling_and_leaves_other_numbers(spelling: str) -> None:
    text = f"error 7: {spelling} refused; message 79031112233 id 4512"
    assert redact(text, PHONE, VK_ID) == f"error 7: {MASKED_PHONE} refused; message 79031112233 id 4512"


@pytest.mark.parametrize(
    ("known", "quoted"),
    [
        ("Иванов Иван", "ИВАНОВ иван"),  # Cyrillic in another case
        (EMAIL, EMAIL.upper()),
        ("Strasse 5", "ſtrasse 5"),  # IGNORECASE equates the long s with s: so does the quick test
        ("Kelvin 7", "\u212aelvin 7"),  # the Kelvin sign and K
        ("Ivan Petrov", "\u0130VAN PETROV"),  # the dotted capital I, which casefold() makes "i̇"
        ("Ivan Petrov", "\u0131van petrov"),  # the dotless i
    ],
)
def test_redact_skips_only_values_the_text_cannot_hold(known: str, quoted: str) -> None:
    """`redact` tests the folded text before it compiles a value's pattern: every spelling the
    case-insensitive pattern masks must get past that test."""
    text = f"provider said: {quoted} refused"
    assert quoted not in redact(text, known)
    assert redact("provider said: nothing of theirs", known) == "provider said: nothing of theirs"


def test_the_quick_test_folds_together_every_pair_of_characters_ignorecase_equates() -> None:
    """Over every code point: two characters the IGNORECASE pattern equates fold to one string."""
    from re._casefix import _EXTRA_CASES  # type: ignore[import-not-found]

    from renewals.privacy import _fold

    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        others = {char.lower(), char.upper(), char.casefold()}
        others |= {chr(x) for x in _EXTRA_CASES.get(ord(char.lower()[0]), ())}
        for other in others:
            if len(other) == 1 and other != char and re.fullmatch(re.escape(char), other, re.I):
                assert _fold(char) == _fold(other), (hex(code), hex(ord(other)))


def test_scrub_exception_masks_the_whole_chain() -> None:
    try:
        try:
            raise KeyError(f"vk user {VK_ID}")
        except KeyError as inner:
            raise PermanentSendError(ErrorType.INVALID_EMAIL, f"{EMAIL.upper()} refused") from inner
    except PermanentSendError as error:
        scrub_exception(error, PHONE, EMAIL, VK_ID)
        assert (str(error), error.message) == ("i***@example.org refused",) * 2
        assert str(error.__cause__) == "'vk user 12***'"


async def test_a_full_renewal_centre_journey_logs_no_personal_data(
    tmp_path: Path, logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with journey_harness(tmp_path) as h:
            handle = await h.start(policy("KASKO", number="PII-1", renewal_centre=True), INTAKE)
            await h.skip_to(msk(4, 3, 10))  # −17: the robot never reached the client; the task is open
            async with h.db.session() as session:
                task = (await session.execute(select(OperatorTaskRow))).scalar_one()
                texts = (await session.execute(select(SandboxMessageRow.text))).scalars().all()
            stranger = OperatorOutcomeReport(task_id="999", outcome=OperatorOutcome.REFUSED)
            with pytest.raises(WorkflowUpdateFailedError):  # the SDK logs the refusal with its traceback
                await handle.execute_update(RenewalJourney.on_operator_outcome, stranger)
            note = f"говорил с {CLIENT['first_name']} {CLIENT['patronymic']}, {PHONE}"  # kept, never logged
            report = OperatorOutcomeReport(
                task_id=str(task.id), outcome=OperatorOutcome.REACHED_RENEWING, note=note
            )
            await handle.execute_update(RenewalJourney.on_operator_outcome, report)
            final = await handle.result()  # −5 and the end of cover: no payment came

    assert final.stage is Stage.LAPSED
    sent = {e.channel for e in final.timeline if e.status is EntryStatus.SENT}
    assert sent == {Channel.SMS, Channel.EMAIL, Channel.VK, Channel.ROBOT_CALL, Channel.OPERATOR_TASK}
    assert any(CLIENT["first_name"] in text for text in texts)  # the texts do carry the name
    # The capture holds the run: our send lines (masked) and the SDK's worker lines.
    messages = [r.getMessage() for r in logs.records]
    assert any(m.startswith("sent ") and MASKED_PHONE in m for m in messages)
    assert any(r.name.startswith("temporalio") for r in logs.records)
    assert_no_leak(logs.records, caught, "".join(capfd.readouterr()))


class EchoingSms(SingleProvider):
    """An SMS gateway whose refusal quotes the number it was given, digits only."""

    name = "echoing-smsc"

    async def send(self, request: SendRequest) -> str:
        number = request.recipient.lstrip("+")
        raise PermanentSendError(ErrorType.INVALID_PHONE, f"{self.name}: error 7 (invalid number {number})")


class EchoingFlaky(SingleProvider):
    """Fails each message's first attempt with a transient error that quotes the address and the
    whole text (the SDK logs the failure, the activity retries), then records it."""

    name = "echoing-flaky"

    def __init__(self, inner: RecordingMessages) -> None:
        self.inner = inner
        self.failed: set[str] = set()

    async def send(self, request: SendRequest) -> str:
        if request.dedup_key not in self.failed:
            self.failed.add(request.dedup_key)
            raise ProviderUnavailable(
                f"{self.name}: {request.recipient} deferred, message {request.text!r}", provider=self.name
            )
        return await self.inner.send(request)


class EchoingVk(SingleProvider):
    name = "echoing-vk"

    async def send(self, request: SendRequest) -> str:
        raise PermanentSendError(
            ErrorType.NOT_ALLOWED_BY_RECIPIENT, f"{self.name}: user {request.recipient} forbids messages"
        )


async def test_failing_sends_log_no_personal_data(
    tmp_path: Path, logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/failing.db")
    flaky = EchoingFlaky(RecordingMessages(db))
    channels = Channels(
        {
            Channel.SMS: EchoingSms(),
            Channel.EMAIL: flaky,
            Channel.VK: EchoingVk(),
            Channel.ROBOT_CALL: ScriptedRobot(db),
        },
        DatabasePortal(db),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with journey_harness(tmp_path, channels, db) as h:
            handle = await h.start(policy("KASKO", number="PII-2", renewal_centre=True), INTAKE)
            await h.skip_to(msk(3, 21, 12))  # −30: e-mail, VK and SMS
            status = await handle.query(RenewalJourney.status)
    await db.dispose()

    day = {e.channel: (e.status, e.reason or "") for e in status.timeline if e.day == -30}
    assert day[Channel.SMS] == (
        EntryStatus.FAILED,
        f"InvalidPhone: echoing-smsc: error 7 (invalid number {MASKED_PHONE})",
    )
    assert day[Channel.VK] == (
        EntryStatus.FAILED,
        "NotAllowedByRecipient: echoing-vk: user 12*** forbids messages",
    )
    assert day[Channel.EMAIL][0] is EntryStatus.SENT and flaky.failed  # after one transient failure
    # The SDK logged every failure with its traceback, masked: the capture is not empty.
    failures = [r for r in logs.records if r.getMessage().startswith("Completing activity as failed")]
    assert len(failures) >= 3 and all(r.exc_info for r in failures)
    tracebacks = "\n".join(rendered(r) for r in failures)
    assert MASKED_PHONE in tracebacks and "i***@example.org deferred" in tracebacks
    assert any("failed permanently" in r.getMessage() for r in logs.records)  # our own warning
    assert_no_leak(logs.records, caught, "".join(capfd.readouterr()))


async def test_rejected_rows_quote_no_phone_or_email_in_clear(
    sqlite_db: Database, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    agent = {"kind": "agent", "agent_id": "A-1", "agent_name": "Петрова Анна", "agent_phone": "+79031112233"}
    good: dict[str, Any] = {
        "kind": "policy",
        "product": "KASKO",
        "expires_on": "2027-01-12",
        "last_name": CLIENT["last_name"],
        "first_name": CLIENT["first_name"],
        "patronymic": CLIENT["patronymic"],
        "phone": PHONE,
        "email": EMAIL,
        "vk_id": VK_ID,
        "agent_id": "A-1",
    }
    rows = [
        agent,
        good | {"number": "7100K/046/000101/26", "phone": PHONE + "89"},  # one digit pair too many
        good | {"number": "7100K/046/000102/26", "email": EMAIL + "."},
        good
        | {"number": "7100K/046/000103/26", "phone": PHONE.lstrip("+"), "email": EMAIL.replace("@", " @")},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    report = await import_file(sqlite_db, source, date(2026, 11, 23))

    reasons = {(r.line, r.field): r.reason for r in report.rejections}
    assert reasons == {
        (2, "phone"): "'+7916***6789' is not a valid phone number",
        (3, "email"): "'i***@example.org.' is not an e-mail address",
        (4, "email"): "'i***@example.org' is not an e-mail address",
    }
    assert report.rejects_file is not None
    errors = [json.loads(line)[ERROR_FIELD] for line in report.rejects_file.read_text("utf-8").splitlines()]
    assert len(errors) == 3
    assert_no_leak(logs.records, extra=[*map(str, report.rejections), *errors])


async def test_a_rejected_callback_does_not_echo_what_it_carried(
    sqlite_db: Database, logs: pytest.LogCaptureFixture
) -> None:
    """FastAPI's 422 repeats the request's fields as `input`; ours says where and why only."""
    app = create_app(sqlite_db, cast("Client", None), {"sms": "secret"})  # nothing reaches Temporal
    # It names no journey: the model's own check fails, and FastAPI's `input` would be the whole body.
    reply = {"event_id": "e-1", "type": "reply", "phone": PHONE, "text": f"СТОП {CLIENT['last_name']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks") as http:
        body = json.dumps(reply, ensure_ascii=False).encode()
        signature = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()  # sms must sign
        headers = {"X-Signature": signature, "Content-Type": "application/json"}
        answer = await http.post("/webhooks/sms", content=body, headers=headers)
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert problem["loc"] in ([], ["body"]) and "name the journey" in problem["msg"]  # the body as a whole
    assert set(problem) == {"type", "loc", "msg"}
    assert_no_leak(logs.records, extra=[answer.text])


# The fake providers' own loggers: the provider's side of the wire (aiosmtpd logs every SMTP command
# it receives, as a real relay does), not a line of ours.
PROVIDER_SIDE = ("mail.log", "fake_providers")


async def test_the_real_adapters_over_the_wire_log_no_personal_data(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    """SMSC, SMTP, VK and the robot through their adapters against the fake providers, with 5xx and
    429 answers (retried) and the client's VK id blocked (refused for good): httpx's request lines,
    aiosmtplib, the adapters and the SDK quote none of the client's strings."""
    # Seed 39 draws an error, then a rate limit, for the first two requests, whichever they are.
    faults = FaultConfig(error_rate=0.3, rate_limit_rate=0.2, blocked_recipients=[VK_ID], seed=39)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/wire.db")
    async with sandbox_gateway(tmp_path, faults) as sandbox:
        async with journey_harness(tmp_path, build_channels(sandbox.settings, db), db) as h:
            handle = await h.start(policy("KASKO", number="PII-4", renewal_centre=True), INTAKE)
            await h.skip_to(msk(3, 23, 7))  # −30's messages and −29's robot call
            status = await handle.query(RenewalJourney.status)
        outcomes = {r.outcome for r in sandbox.gateway.requests.records()}
    await db.dispose()

    results = {e.channel: e.status for e in status.timeline}
    assert results == {
        Channel.EMAIL: EntryStatus.SENT,
        Channel.SMS: EntryStatus.SENT,
        Channel.VK: EntryStatus.FAILED,
        Channel.ROBOT_CALL: EntryStatus.SENT,
    }
    assert {"error", "rate_limit"} <= outcomes  # retried, and VK refused (its check, or a retry's 901)
    assert outcomes & {"refused", "rejected:901"}
    ours = [r for r in logs.records if not r.name.startswith(PROVIDER_SIDE)]
    assert any(r.name.startswith("httpx") for r in ours) and any(
        r.getMessage().startswith("Completing activity as failed") for r in ours
    )
    assert_no_leak(ours)
    # The control: the provider's side did see the address, so the capture had it to find.
    assert any(leaks(rendered(r)) for r in logs.records if r.name.startswith(PROVIDER_SIDE))

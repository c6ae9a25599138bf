"""SMTP adapter against the gateway's in-process aiosmtpd sink (127.0.0.1, ephemeral port)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib
import pytest
from aiosmtplib import SMTPRecipientRefused

from fake_providers import FaultConfig, Gateway, SmtpSink
from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError
from renewals.channels.email import EmailConfig, EmailProvider, classify_smtp_error, html_body, message_id_for
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.channels.mime import Rendered
from renewals.models import Channel
from tests.test_gateway_helpers import send_request

EMAIL = "client@example.ru"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(Gateway())
    await sink.start()
    yield sink
    sink.gateway.faults.release_hangs()
    await sink.stop()


def email_request(
    recipient: str = EMAIL,
    touchpoint: str = "d-30-email",
    text: str = "Здравствуйте!\n\nПолис <истекает> & скоро.",
) -> SendRequest:
    return send_request(
        channel=Channel.EMAIL, recipient=recipient, touchpoint=touchpoint, text=text, subject="Продление"
    )


def provider(sink: SmtpSink, **extra: object) -> EmailProvider:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "sender_address": "renewals@alfa.example",
        "sender_name": "Альфа Страхование",
        "start_tls": False,
        "timeout_seconds": 2.0,
    }
    config = EmailConfig.model_validate(settings | extra)
    return EmailProvider(config)


def parsed(rendered: Rendered) -> EmailMessage:
    """The wire bytes read back by the standard library with its strict policy (any defect raises)."""
    message = message_from_bytes(rendered.data, policy=policy.strict)
    assert isinstance(message, EmailMessage)
    return message


def test_message_shape() -> None:
    config = EmailConfig(host="h", sender_address="renewals@alfa.example", sender_name="Альфа")
    rendered = EmailProvider(config).build(email_request())
    message = parsed(rendered)
    assert message["Message-ID"] == message_id_for(email_request().dedup_key, "alfa.example")
    assert rendered.message_id == message["Message-ID"] and rendered.recipient == EMAIL
    assert message["Subject"] == "Продление" and message["To"] == EMAIL
    assert message["From"] == "Альфа <renewals@alfa.example>" and message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative" and not message.defects
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None and plain.get_content() == email_request().text
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert content == html_body(email_request().text)
    assert "Полис &lt;истекает&gt; &amp; скоро." in content and "<a " not in content
    assert email_request().dedup_key.encode() not in rendered.data  # the key (a policy number) stays out
    assert b"\r\n" in rendered.data and b"\n" not in rendered.data.replace(b"\r\n", b"")  # CRLF only


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Alfa Insurance",
        'Alfa "Renewals", Moscow',
        "Альфа Страхование — Центр Возобновления Московского региона и области",
    ],
)
def test_headers_survive_any_sender_name_and_a_long_subject(name: str) -> None:
    """Quoted ASCII, long Cyrillic (folded encoded words) and no name all read back exactly."""
    subject = "Продление полиса КАСКО: срок действия вашего полиса истекает через тридцать дней"
    config = EmailConfig(host="h", sender_address="renewals@alfa.example", sender_name=name)
    request = email_request().model_copy(update={"subject": subject})
    rendered = EmailProvider(config).build(request)
    message = parsed(rendered)
    assert message["Subject"] == subject
    # Decoded as RFC 2047 says (the space between adjacent encoded words is not text; the standard
    # library's structured-header parser keeps it, so it is not the judge here).
    raw_from = message_from_bytes(rendered.data, policy=policy.compat32)["From"]
    assert parseaddr(str(make_header(decode_header(raw_from)))) == (name, "renewals@alfa.example")
    assert all(len(line) <= 78 for line in rendered.data.split(b"\r\n"))
    assert not rendered.needs_smtputf8


def test_a_non_ascii_mailbox_asks_the_relay_for_smtputf8() -> None:
    config = EmailConfig(host="h", sender_address="renewals@alfa.example")
    assert EmailProvider(config).build(email_request(recipient="ivan@пример.рф")).needs_smtputf8


def test_html_body_never_links() -> None:
    assert "<a" not in html_body('https://evil.example <a href="x">y</a>')


@pytest.mark.parametrize("bad", ["no-at-sign", "a@b", "two@@x.ru", ""])
def test_invalid_address_is_permanent(bad: str) -> None:
    config = EmailConfig(host="h", sender_address="r@alfa.example")
    with pytest.raises(PermanentSendError) as caught:
        EmailProvider(config).build(email_request(recipient=bad))
    assert caught.value.error_type == "InvalidEmail"


async def test_sends_to_sink_and_a_resend_keeps_its_message_id(sink: SmtpSink) -> None:
    email = provider(sink)
    first = await email.send(email_request())
    await email.send(email_request(touchpoint="d-5-email"))
    records = sink.gateway.log.records("email")
    assert records[0].key == first and len(records) == 2
    assert records[0].recipient == EMAIL and records[0].subject == "Продление"
    assert "&lt;истекает&gt;" in (records[0].meta["html"] or "")
    # SMTP cannot refuse a resend: it is a second message, recognisable by its Message-ID.
    assert await email.send(email_request()) == first
    repeat = sink.gateway.log.records("email")[-1]
    assert (repeat.key, repeat.repeat, repeat.deduplicated) == (first, True, False)


async def test_refused_recipient_is_permanent(sink: SmtpSink) -> None:
    sink.gateway.configure_faults(FaultConfig(blocked_recipients=[EMAIL]))
    with pytest.raises(PermanentSendError) as caught:
        await provider(sink).send(email_request())
    assert caught.value.error_type == "InvalidEmail"


async def test_sink_faults(sink: SmtpSink) -> None:
    sink.gateway.configure_faults(FaultConfig(error_rate=1.0))
    with pytest.raises(ProviderUnavailable):
        await provider(sink).send(email_request())
    sink.gateway.configure_faults(FaultConfig(rate_limit_rate=1.0))
    with pytest.raises(RateLimited):
        await provider(sink).send(email_request())
    assert sink.gateway.log.records() == []


async def test_hang_is_a_maybe_accepted_timeout_then_retry_sends_once(sink: SmtpSink) -> None:
    sink.gateway.configure_faults(FaultConfig(timeout_rate=1.0, hang_seconds=5))
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(sink, timeout_seconds=0.3).send(email_request())
    assert caught.value.maybe_accepted
    sink.gateway.faults.release_hangs()
    sink.gateway.configure_faults(FaultConfig())
    retried = await provider(sink).send(email_request())
    # At-least-once: the server had queued the first copy, the retry sends it again — with the same
    # Message-ID, so the recipient's mail store collapses the two.
    records = sink.gateway.log.records("email")
    assert retried == message_id_for(email_request().dedup_key, "alfa.example")
    assert [(r.key, r.repeat) for r in records] == [(retried, False), (retried, True)]
    assert [r.outcome for r in sink.gateway.requests.records("email")] == ["hang", "repeat"]


async def test_timeout_before_accept_then_retry_sends_once(sink: SmtpSink) -> None:
    sink.gateway.configure_faults(FaultConfig(stall_rate=1.0, hang_seconds=5))
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(sink, timeout_seconds=0.3).send(email_request())
    assert caught.value.maybe_accepted
    sink.gateway.faults.release_hangs()
    sink.gateway.configure_faults(FaultConfig())
    await provider(sink).send(email_request())
    assert [r.repeat for r in sink.gateway.log.records("email")] == [False]


async def test_connection_refused_is_transient_and_not_accepted() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    config = EmailConfig(host="127.0.0.1", port=port, sender_address="r@alfa.example", start_tls=False)
    with pytest.raises(ProviderUnavailable) as caught:
        await EmailProvider(config).send(email_request())
    assert not caught.value.maybe_accepted


@pytest.mark.parametrize(
    ("exc", "kind", "error_type"),
    [
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), ChannelPaused, "AuthFailed"),
        (aiosmtplib.SMTPResponseException(530, "auth required"), ChannelPaused, "AuthFailed"),
        (
            aiosmtplib.SMTPRecipientsRefused([SMTPRecipientRefused(550, "no such user", EMAIL)]),
            PermanentSendError,
            "InvalidEmail",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([SMTPRecipientRefused(554, "policy", EMAIL)]),
            PermanentSendError,
            "RecipientRefused",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([SMTPRecipientRefused(452, "mailbox full", EMAIL)]),
            ProviderUnavailable,
            "ProviderUnavailable",
        ),
        (aiosmtplib.SMTPDataError(552, "too big"), PermanentSendError, "MessageRejected"),
        (aiosmtplib.SMTPDataError(451, "local error"), ProviderUnavailable, "ProviderUnavailable"),
        (aiosmtplib.SMTPSenderRefused(421, "rate limit exceeded", "r@x"), RateLimited, "RateLimited"),
        (aiosmtplib.SMTPConnectError("refused"), ProviderUnavailable, "ProviderUnavailable"),
        (aiosmtplib.SMTPServerDisconnected("gone"), ProviderUnavailable, "ProviderUnavailable"),
    ],
)
def test_classification(exc: aiosmtplib.SMTPException, kind: type[Exception], error_type: str) -> None:
    error = classify_smtp_error("smtp", exc)
    assert isinstance(error, kind) and getattr(error, "error_type", None) == error_type


async def test_messages_share_one_session_and_a_failed_session_is_never_reused(sink: SmtpSink) -> None:
    smtp = provider(sink)
    for i in range(3):
        await smtp.send(email_request(touchpoint=f"d-{i}-email"))
    assert sink.sessions == 1  # connect, EHLO and the rest once for three messages
    sink.gateway.configure_faults(FaultConfig(blocked_recipients=["blocked@example.ru"]))
    with pytest.raises(PermanentSendError):
        await smtp.send(email_request(recipient="blocked@example.ru"))
    await smtp.send(email_request(touchpoint="d-5-email"))
    assert sink.sessions == 2  # the refused message's session was closed; the next one is new
    assert len(sink.gateway.log.records("email")) == 4
    await smtp.aclose()


async def test_without_reuse_each_message_has_its_own_session(sink: SmtpSink) -> None:
    smtp = provider(sink, session_idle_seconds=0)
    for i in range(3):
        await smtp.send(email_request(touchpoint=f"d-{i}-email"))
    assert sink.sessions == 3


async def test_a_session_reaches_its_message_cap_and_a_new_one_opens(sink: SmtpSink) -> None:
    smtp = provider(sink, messages_per_session=2)
    for i in range(3):
        await smtp.send(email_request(touchpoint=f"d-{i}-email"))
    assert sink.sessions == 2
    assert len(sink.gateway.log.records("email")) == 3


async def test_a_session_the_relay_closed_while_idle_is_not_reused() -> None:
    sink = SmtpSink(Gateway(), idle_timeout=0.2)  # the relay drops sessions silent for 0.2 s
    await sink.start()
    try:
        smtp = provider(sink)
        await smtp.send(email_request(touchpoint="d-1-email"))
        idle = smtp._idle[0].smtp
        for _ in range(100):  # until the relay's close reaches the client (at most 5 s)
            if not idle.is_connected:
                break
            await asyncio.sleep(0.05)
        assert not idle.is_connected
        await smtp.send(email_request(touchpoint="d-2-email"))  # no error: a new session, not the dead one
        assert sink.sessions == 2
        assert [r.repeat for r in sink.gateway.log.records("email")] == [False, False]
    finally:
        await sink.stop()

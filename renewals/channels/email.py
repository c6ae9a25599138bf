"""E-mail over SMTP (aiosmtplib): plain text with an HTML alternative, nothing else.

The HTML part is the escaped text with line breaks — no links, no images, no tracking (NDA).
4xx replies are transient, 5xx permanent.

Exactly-once is not possible over SMTP, and this adapter does not pretend otherwise: SMTP has no
idempotency key and no status query. When the dialogue dies after DATA went out (a timeout waiting
for the final 250, a dropped connection) the server may have queued the message, and the retry sends
it again — **at-least-once on ambiguous failures**. What keeps that harmless: the dedup key becomes
a deterministic `Message-ID`, identical on every resend, so the second copy is recognisable as the
same message (mail stores and clients collapse it, support can search for it; the fake providers'
gateway logs it as a repeat). Failures before DATA (connect, auth, a refused recipient) send nothing.

Sessions are reused: a message goes out on an SMTP session left open by an earlier one (connect,
EHLO, STARTTLS and AUTH once, not per message — in the morning burst they were most of the e-mail
channel's cost). A session is reused only while fresh (`session_idle_seconds`, below the idle limit
relays enforce) and for up to `messages_per_session`; one that failed in any way is closed, never
reused, so a retry always starts on a new session.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import format_datetime

import aiosmtplib
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.errors import ChannelPaused, ErrorType, ProviderUnavailable, RateLimited
from renewals.channels.mime import Rendered, render
from renewals.privacy import mask_address


class EmailConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    sender_address: str  # e.g. renewals@example.ru
    sender_name: str = ""
    use_tls: bool = False  # implicit TLS (port 465)
    start_tls: bool | None = None  # None: STARTTLS when the server offers it
    validate_certs: bool = True
    timeout_seconds: float = 30.0
    message_id_domain: str | None = None  # default: the sender address's domain
    default_subject: str = "Продление полиса"
    session_idle_seconds: float = 10.0  # an idle session older than this is closed, not reused; 0: no reuse
    messages_per_session: int = 100  # relays cap messages per connection (Postfix: 100 by default)
    local_hostname: str | None = None  # the EHLO name; default: this host's name, looked up once


def message_id_for(dedup_key: str, domain: str) -> str:
    """`<hash@domain>`: stable for a dedup key, without the key (it names a policy) in the header."""
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:32]}@{domain}>"


def html_body(text: str) -> str:
    """The text, escaped, paragraphs kept: the HTML alternative carries no markup of its own."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    rendered = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{rendered}</body></html>'


def parse_address(raw: str) -> Address:
    try:
        address = Address(addr_spec=raw.strip())
    except (ValueError, IndexError, HeaderParseError):
        raise PermanentSendError(ErrorType.INVALID_EMAIL, "not an e-mail address") from None
    if not address.username or "." not in address.domain:
        raise PermanentSendError(ErrorType.INVALID_EMAIL, "not an e-mail address")
    return address


def classify_smtp_error(provider: str, exc: aiosmtplib.SMTPException) -> Exception:
    """An aiosmtplib exception → the exception the activity reacts to."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return ChannelPaused(ErrorType.AUTH_FAILED, f"{provider}: SMTP auth failed ({exc.code})", provider)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(code >= 500 for code in codes):
            code = codes[0]
            kind = ErrorType.INVALID_EMAIL if code in (550, 551, 553) else ErrorType.RECIPIENT_REFUSED
            return PermanentSendError(kind, f"{provider}: recipient refused ({code})")
        return ProviderUnavailable(f"{provider}: recipient deferred ({codes})", provider=provider)
    if isinstance(exc, aiosmtplib.SMTPConnectError):  # includes the connect timeout: nothing was sent
        return ProviderUnavailable(f"{provider}: {type(exc).__name__}", provider=provider)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected):
        # The connection died mid-dialogue: maybe after the server took the message.
        name = type(exc).__name__
        return ProviderUnavailable(f"{provider}: {name}", provider=provider, maybe_accepted=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code == 530:  # authentication required: our configuration
            return ChannelPaused(ErrorType.AUTH_FAILED, f"{provider}: SMTP 530", provider)
        if exc.code in (421, 450, 451) and "rate" in exc.message.lower():
            return RateLimited(f"{provider}: SMTP {exc.code}", provider=provider)
        if exc.code >= 500:
            return PermanentSendError(ErrorType.MESSAGE_REJECTED, f"{provider}: SMTP {exc.code}")
        return ProviderUnavailable(f"{provider}: SMTP {exc.code}", provider=provider)
    return ProviderUnavailable(f"{provider}: {type(exc).__name__}", provider=provider)


@dataclass
class _Session:
    smtp: aiosmtplib.SMTP
    idle_since: float = 0.0
    messages: int = 0


class EmailProvider(SingleProvider):
    """E-mail through any SMTP relay (no status query: the Message-ID is derived from the key)."""

    def __init__(self, config: EmailConfig, name: str = "smtp") -> None:
        self.config = config
        self.name = name
        self._domain = config.message_id_domain or config.sender_address.rpartition("@")[2]
        self._idle: list[_Session] = []  # open sessions waiting for the next message, newest last
        self._local_hostname = config.local_hostname

    def build(self, request: SendRequest) -> Rendered:
        """The message exactly as it goes out (tests and the audit inspect it)."""
        to = parse_address(request.recipient)
        return render(
            sender_name=self.config.sender_name,
            sender=self.config.sender_address,
            recipient=to.addr_spec,
            subject=request.subject or self.config.default_subject,
            message_id=message_id_for(request.dedup_key, self._domain),
            date=format_datetime(datetime.now(UTC)),
            text=request.text,
            html=html_body(request.text),
        )

    async def send(self, request: SendRequest) -> str:
        message = self.build(request)
        session: _Session | None = None
        try:
            session = await self._session()
            await session.smtp.sendmail(
                message.sender,
                [message.recipient],
                message.data,
                mail_options=["SMTPUTF8"] if message.needs_smtputf8 else None,
            )
        except BaseException as exc:
            self._discard(session)
            if isinstance(exc, aiosmtplib.SMTPException):
                raise classify_smtp_error(self.name, exc) from None
            if isinstance(exc, OSError):  # DNS failure, refused connection before aiosmtplib wraps it
                raise ProviderUnavailable(f"{self.name}: {type(exc).__name__}", provider=self.name) from None
            raise
        await self._release(session)
        return message.message_id

    async def aclose(self) -> None:
        while self._idle:
            await self._quit(self._idle.pop())

    async def _session(self) -> _Session:
        """A fresh-enough open session, or a new one (connected, EHLO, STARTTLS, AUTH)."""
        now = time.monotonic()
        while self._idle:
            session = self._idle.pop()
            if session.smtp.is_connected and now - session.idle_since < self.config.session_idle_seconds:
                return session
            await self._quit(session)
        if self._local_hostname is None:  # the EHLO name, looked up once (a DNS call per session else)
            self._local_hostname = await asyncio.get_running_loop().run_in_executor(None, socket.getfqdn)
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            validate_certs=config.validate_certs,
            timeout=config.timeout_seconds,
            local_hostname=self._local_hostname,
        )
        session = _Session(smtp)
        try:
            await smtp.connect()
        except BaseException:
            self._discard(session)
            raise
        return session

    async def _release(self, session: _Session) -> None:
        session.messages += 1
        if self.config.session_idle_seconds <= 0 or session.messages >= self.config.messages_per_session:
            await self._quit(session)
            return
        session.idle_since = time.monotonic()
        self._idle.append(session)

    async def _quit(self, session: _Session) -> None:
        try:
            await session.smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            session.smtp.close()

    @staticmethod
    def _discard(session: _Session | None) -> None:
        """A session that failed is closed at once (never reused: its state is unknown)."""
        if session is not None:
            session.smtp.close()

    def __repr__(self) -> str:
        sender = mask_address("email", self.config.sender_address)
        return f"EmailProvider({self.config.host}:{self.config.port}, from {sender})"

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
"""

from __future__ import annotations

import hashlib
import html
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.errors import ChannelPaused, ErrorType, ProviderUnavailable, RateLimited
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


class EmailProvider(SingleProvider):
    """E-mail through any SMTP relay (no status query: the Message-ID is derived from the key)."""

    def __init__(self, config: EmailConfig, name: str = "smtp") -> None:
        self.config = config
        self.name = name
        self._domain = config.message_id_domain or config.sender_address.rpartition("@")[2]

    def build(self, request: SendRequest) -> EmailMessage:
        """The message exactly as it goes out (tests and the audit inspect it)."""
        to = parse_address(request.recipient)
        message = EmailMessage()
        message["From"] = Address(display_name=self.config.sender_name, addr_spec=self.config.sender_address)
        message["To"] = to
        message["Subject"] = request.subject or self.config.default_subject
        message["Message-ID"] = message_id_for(request.dedup_key, self._domain)
        message["Date"] = format_datetime(datetime.now(UTC))
        message.set_content(request.text)
        message.add_alternative(html_body(request.text), subtype="html")
        return message

    async def send(self, request: SendRequest) -> str:
        message = self.build(request)
        password = self.config.password.get_secret_value() if self.config.password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=self.config.host,
                port=self.config.port,
                username=self.config.username,
                password=password,
                use_tls=self.config.use_tls,
                start_tls=self.config.start_tls,
                validate_certs=self.config.validate_certs,
                timeout=self.config.timeout_seconds,
            )
        except aiosmtplib.SMTPException as exc:
            raise classify_smtp_error(self.name, exc) from None
        except OSError as exc:  # DNS failure, refused connection before aiosmtplib wraps it
            raise ProviderUnavailable(f"{self.name}: {type(exc).__name__}", provider=self.name) from None
        return str(message["Message-ID"])

    def __repr__(self) -> str:
        sender = mask_address("email", self.config.sender_address)
        return f"EmailProvider({self.config.host}:{self.config.port}, from {sender})"

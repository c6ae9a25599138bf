"""The HTTP e-mail adapter (Unisender Go's Web API): against `httpx.MockTransport` for each answer the
API gives, in a failover chain with the SMTP adapter (the gateway's aiosmtpd sink) behind it, and
against the fake provider gateway's API — which drops a repeated idempotency key, as the real one does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from fake_providers import FaultConfig, Gateway, GatewayConfig, SmtpSink, create_app, messages_per_key
from fake_providers.email_api import EmailApiSettings, configure
from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError
from renewals.channels.email import EmailConfig, EmailProvider, message_id_for
from renewals.channels.email_http import (
    METADATA_KEY,
    RECIPIENT_DEFERRED,
    EmailApiConfig,
    EmailApiProvider,
    email_api_id,
)
from renewals.channels.errors import (
    ChannelPaused,
    ErrorType,
    ProviderUnavailable,
    RateLimited,
    TransientSendError,
)
from renewals.channels.factory import ChannelConfigError, build_channels, email_provider
from renewals.channels.failover import FailoverProvider, InMemoryLedger
from renewals.db.database import Database
from renewals.models import Channel
from renewals.settings import Settings
from tests.test_gateway_helpers import asgi_client, send_request, serve

EMAIL = "client@example.ru"
KEY = "test-api-key"
Handler = Callable[[httpx.Request], httpx.Response]


def email_request(recipient: str = EMAIL, resumed: bool = False) -> SendRequest:
    return send_request(
        channel=Channel.EMAIL,
        recipient=recipient,
        touchpoint="d-30-email",
        text="Здравствуйте!\n\nПолис <истекает> & скоро.",
        subject="Продление",
        resumed=resumed,
    )


def config(**extra: Any) -> EmailApiConfig:
    values: dict[str, Any] = {
        "base_url": "https://go1.example/ru/transactional/api/v1",
        "api_key": KEY,
        "sender_address": "renewals@alfa.example",
        "sender_name": "Альфа Страхование",
        "timeout_seconds": 2.0,
    }
    return EmailApiConfig.model_validate(values | extra)


def success(request: httpx.Request) -> httpx.Response:
    to = json.loads(request.content)["message"]["recipients"][0]["email"]
    return httpx.Response(200, json={"status": "success", "job_id": "1ZymBc-00041N-9X", "emails": [to]})


def api(handler: Handler, seen: list[httpx.Request] | None = None, **extra: Any) -> EmailApiProvider:
    def record(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return handler(request)

    return EmailApiProvider(config(**extra), client=httpx.AsyncClient(transport=httpx.MockTransport(record)))


def answer(status: int, body: Any = None) -> Handler:
    return lambda _: httpx.Response(status, json=body if body is not None else {"status": "error"})


async def test_the_idempotency_key_and_our_id_go_with_the_message() -> None:
    seen: list[httpx.Request] = []
    request = email_request()
    message_id = await api(success, seen).send(request)

    expected = email_api_id(request.dedup_key)
    assert message_id == expected and len(expected) == 32
    # the same hash the SMTP adapter puts in its Message-ID: one id for a message, whichever way it went
    assert message_id_for(request.dedup_key, "d") == f"<{expected}@d>"
    [sent] = seen
    assert sent.method == "POST" and sent.url.path == "/ru/transactional/api/v1/email/send.json"
    assert sent.headers["X-API-KEY"] == KEY
    body = json.loads(sent.content)
    assert body["idempotence_key"] == expected
    message = body["message"]
    assert message["recipients"] == [{"email": EMAIL, "metadata": {METADATA_KEY: expected}}]
    assert message["subject"] == "Продление" and message["from_email"] == "renewals@alfa.example"
    assert message["from_name"] == "Альфа Страхование"
    assert message["body"]["plaintext"] == request.text
    assert "&lt;истекает&gt; &amp; скоро" in message["body"]["html"] and "<a " not in message["body"]["html"]
    assert (message["track_read"], message["track_links"], message["skip_unsubscribe"]) == (1, 0, 0)
    # the dedup key names the policy: it never reaches the provider
    assert request.journey_id not in sent.content.decode() and KEY not in sent.content.decode()


async def test_a_retry_after_a_timeout_sends_the_same_key() -> None:
    seen: list[httpx.Request] = []
    calls = iter(["timeout", "ok"])

    def flaky(request: httpx.Request) -> httpx.Response:
        if next(calls) == "timeout":
            raise httpx.ReadTimeout("answer lost", request=request)
        return success(request)

    provider = api(flaky, seen)
    with pytest.raises(ProviderUnavailable) as lost:
        await provider.send(email_request())
    assert lost.value.maybe_accepted  # the API may have the message: the retry must come back here
    assert await provider.send(email_request(resumed=True)) == email_api_id(email_request().dedup_key)
    first, second = (json.loads(r.content) for r in seen)
    assert first == second and first["idempotence_key"] == email_api_id(email_request().dedup_key)


@pytest.mark.parametrize(
    ("status", "maybe_accepted"),
    [(500, True), (502, True), (503, False), (504, True)],
)
async def test_5xx_is_transient(status: int, maybe_accepted: bool) -> None:
    with pytest.raises(ProviderUnavailable) as error:
        await api(answer(status)).send(email_request())
    assert error.value.maybe_accepted is maybe_accepted


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_pauses_the_channel(status: int) -> None:
    body = {"status": "error", "code": 101, "message": "Invalid API key"}
    with pytest.raises(ChannelPaused) as paused:
        await api(answer(status, body)).send(email_request())
    assert paused.value.error_type == ErrorType.AUTH_FAILED and paused.value.provider == "unisender"


async def test_wrong_data_centre_and_wrong_url_pause_the_channel() -> None:
    wrong_server = {"status": "error", "code": 114, "message": "User with id 1 not found"}
    with pytest.raises(ChannelPaused, match="other data centre"):
        await api(answer(400, wrong_server)).send(email_request())
    with pytest.raises(ChannelPaused, match="check base_url") as paused:
        await api(answer(404)).send(email_request())
    assert paused.value.error_type == ErrorType.INVALID_REQUEST


async def test_rate_limit_backs_off() -> None:
    limited = lambda _: httpx.Response(429, headers={"Retry-After": "7"}, json={"status": "error"})  # noqa: E731
    with pytest.raises(RateLimited) as error:
        await api(limited).send(email_request())
    assert error.value.retry_after == 7.0


async def test_a_malformed_address_is_refused_before_any_call() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(PermanentSendError) as error:
        await api(success, seen).send(email_request(recipient="not an address"))
    assert error.value.error_type == ErrorType.INVALID_EMAIL and seen == []


@pytest.mark.parametrize(
    ("reason", "error_type"),
    [
        ("invalid", ErrorType.INVALID_EMAIL),
        ("permanent_unavailable", ErrorType.RECIPIENT_REFUSED),
        ("unsubscribed", ErrorType.NOT_ALLOWED_BY_RECIPIENT),
    ],
)
async def test_the_apis_refusal_of_the_address_is_permanent(reason: str, error_type: str) -> None:
    body = {"status": "success", "job_id": "j", "emails": [], "failed_emails": {EMAIL: reason}}
    with pytest.raises(PermanentSendError) as error:
        await api(answer(200, body)).send(email_request())
    assert error.value.error_type == error_type


async def test_a_bad_request_is_permanent_and_says_why() -> None:
    body = {"status": "error", "code": 204, "message": "Field 'subject' is too long"}
    with pytest.raises(PermanentSendError, match=r"error 204 \(Field 'subject' is too long\)") as error:
        await api(answer(400, body)).send(email_request())
    assert error.value.error_type == ErrorType.INVALID_REQUEST


async def test_a_temporarily_unavailable_mailbox_is_retried_later_on_the_api() -> None:
    body = {
        "status": "success",
        "job_id": "j",
        "emails": [],
        "failed_emails": {EMAIL: "temporary_unavailable"},
    }
    with pytest.raises(TransientSendError) as error:
        await api(answer(200, body), deferred_retry_seconds=600).send(email_request())
    assert error.value.error_type == RECIPIENT_DEFERRED and error.value.retry_after == 600
    assert not isinstance(error.value, ProviderUnavailable)  # no failover: SMTP meets the same mailbox


async def test_a_200_that_names_nothing_may_be_an_accept() -> None:
    with pytest.raises(ProviderUnavailable) as error:
        await api(answer(200, {"status": "success", "job_id": "j", "emails": []})).send(email_request())
    assert error.value.maybe_accepted and error.value.answered
    with pytest.raises(ProviderUnavailable) as unreadable:
        await api(lambda _: httpx.Response(200, text="OK")).send(email_request())
    assert unreadable.value.maybe_accepted


async def test_a_repeat_the_api_calls_duplicate_is_the_message_it_has() -> None:
    body = {"status": "success", "job_id": "j", "emails": [EMAIL], "failed_emails": {EMAIL: "duplicate"}}
    assert await api(answer(200, body)).send(email_request()) == email_api_id(email_request().dedup_key)


# ---- failover: the API first, SMTP behind it ------------------------------------------------------


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(Gateway())
    await sink.start()
    yield sink
    await sink.stop()


def smtp(sink: SmtpSink) -> EmailProvider:
    return EmailProvider(
        EmailConfig(host="127.0.0.1", port=sink.port, sender_address="renewals@alfa.example", start_tls=False)
    )


def chain(handler: Handler, sink: SmtpSink, seen: list[httpx.Request]) -> FailoverProvider:
    return FailoverProvider([api(handler, seen), smtp(sink)], InMemoryLedger(), name="email-failover")


@pytest.mark.parametrize(
    "refusal",
    [
        answer(503),  # turned away: nothing taken
        answer(401, {"status": "error", "code": 101, "message": "Invalid API key"}),  # refuses our key
        lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)),  # never reached
    ],
)
async def test_smtp_takes_over_when_the_api_proves_it_took_nothing(refusal: Handler, sink: SmtpSink) -> None:
    seen: list[httpx.Request] = []
    delivery = await chain(refusal, sink, seen).deliver(email_request())
    assert delivery.provider == "smtp" and len(seen) == 1
    [line] = sink.gateway.log.records("email")
    assert line.key == delivery.message_id == message_id_for(email_request().dedup_key, "alfa.example")


async def test_after_an_ambiguous_failure_only_the_api_is_asked_again(sink: SmtpSink) -> None:
    seen: list[httpx.Request] = []
    calls = iter([answer(504), success])
    failover = chain(lambda r: next(calls)(r), sink, seen)
    with pytest.raises(ProviderUnavailable):
        await failover.deliver(email_request())
    assert await failover.ledger.pinned(email_request().dedup_key) == "unisender"
    delivery = await failover.deliver(email_request(resumed=True))
    assert delivery.provider == "unisender" and len(seen) == 2
    assert sink.gateway.log.records("email") == []  # never sent twice, never through both


async def test_a_permanent_refusal_does_not_fail_over(sink: SmtpSink) -> None:
    body = {"status": "success", "job_id": "j", "emails": [], "failed_emails": {EMAIL: "invalid"}}
    with pytest.raises(PermanentSendError):
        await chain(answer(200, body), sink, []).deliver(email_request())
    assert sink.gateway.log.records("email") == []


async def test_the_factory_puts_smtp_behind_the_api(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/f.db")
    smtp_config = EmailConfig(host="h", sender_address="renewals@alfa.example")
    both = email_provider(config(), smtp_config, db)
    assert isinstance(both, FailoverProvider) and both.name == "email-failover"
    assert [p.name for p in both.providers] == ["unisender", "smtp"]
    assert isinstance(email_provider(config(), None, db), EmailApiProvider)
    assert isinstance(email_provider(None, smtp_config, db), EmailProvider)
    with pytest.raises(ChannelConfigError, match="RENEWALS_EMAIL_API__"):
        email_provider(None, None, db)
    await db.dispose()


# ---- against the fake provider gateway's API ------------------------------------------------------


def gateway_config(base: str) -> EmailApiConfig:
    return config(base_url=f"{base}/ru/transactional/api/v1", timeout_seconds=0.5)


async def test_gateway_a_resend_with_the_same_key_is_one_message() -> None:
    gateway = Gateway()
    configure(gateway, EmailApiSettings(api_key=KEY, open_rate=0))
    async with asgi_client(gateway) as client:
        provider = EmailApiProvider(gateway_config("http://gw"), client=client)
        first = await provider.send(email_request())
        again = await provider.send(email_request(resumed=True))
    assert first == again == email_api_id(email_request().dedup_key)
    lines = gateway.log.records("email")
    assert [(line.key, line.repeat, line.deduplicated) for line in lines] == [
        (first, False, False),
        (first, True, True),
    ]
    assert lines[0].provider_id == lines[1].provider_id  # the repeat was answered with the first job
    assert messages_per_key([line.model_dump() for line in lines]) == {("email", first): 1}
    assert [r.outcome for r in gateway.requests.records("email")] == ["accepted", "repeat"]
    assert lines[0].meta["metadata"] == {METADATA_KEY: first} and lines[0].subject == "Продление"


async def test_gateway_a_lost_answer_then_the_retry_is_still_one_message() -> None:
    """The API takes the message and its answer never comes (the HANG fault); the adapter times out;
    the retry carries the same key and the gateway drops it: one message reached the client."""
    gateway = Gateway(
        GatewayConfig(faults=FaultConfig(timeout_rate=1.0, hang_seconds=30, channels=["email"]))
    )
    async with serve(create_app(gateway)) as url:
        provider = EmailApiProvider(gateway_config(url))
        with pytest.raises(ProviderUnavailable) as lost:
            await provider.send(email_request())
        assert lost.value.maybe_accepted
        gateway.configure_faults(FaultConfig())
        gateway.faults.release_hangs()
        await provider.send(email_request(resumed=True))
        await provider.aclose()
    outcomes = [r.outcome for r in gateway.requests.records("email")]
    assert outcomes == ["hang", "repeat"]
    assert set(messages_per_key([line.model_dump() for line in gateway.log.records()]).values()) == {1}


async def test_gateway_checks_the_key_and_the_address() -> None:
    gateway = Gateway()
    configure(gateway, EmailApiSettings(api_key=KEY))
    async with asgi_client(gateway) as client:
        wrong = EmailApiProvider(
            gateway_config("http://gw").model_copy(update={"api_key": SecretStr("other")}), client=client
        )
        with pytest.raises(ChannelPaused):
            await wrong.send(email_request())
        right = EmailApiProvider(gateway_config("http://gw"), client=client)
        body = right.payload(email_request())
        body["message"]["recipients"][0]["email"] = "client@localhost"  # the API's own check
        raw = await client.post(
            "/ru/transactional/api/v1/email/send.json", json=body, headers={"X-API-KEY": KEY}
        )
    assert raw.status_code == 200 and raw.json()["failed_emails"] == {"client@localhost": "invalid"}
    assert [r.outcome for r in gateway.requests.records("email")] == ["rejected:401", "rejected:invalid"]
    assert gateway.log.records() == []


async def test_under_faults_each_email_goes_out_once_and_through_one_provider_only() -> None:
    """A third of the gateway's answers fail (503, 429, accepted-then-silent, silent-then-dropped),
    on the API and on the SMTP sink alike. Retrying each message until it goes, as the activity does:
    the API never sends one twice (its key), no message goes through both providers, and SMTP repeats
    one only after its own lost 250 (its known at-least-once)."""
    faults = FaultConfig(
        error_rate=0.15, rate_limit_rate=0.05, timeout_rate=0.08, stall_rate=0.07, hang_seconds=1, seed=11
    )
    gateway = Gateway(GatewayConfig(faults=faults))
    sink = SmtpSink(gateway)
    await sink.start()
    requests = [
        send_request(
            channel=Channel.EMAIL,
            recipient=f"c{i}@example.org",
            touchpoint="d-30-email",
            journey_id=f"renewal-F{i:03d}-20270420",
            subject="Продление",
        )
        for i in range(40)
    ]
    try:
        async with serve(create_app(gateway)) as url:
            smtp_config = EmailConfig(
                host="127.0.0.1",
                port=sink.port,
                sender_address="renewals@alfa.example",
                start_tls=False,
                timeout_seconds=0.5,
            )
            failover = FailoverProvider(
                [EmailApiProvider(gateway_config(url)), EmailProvider(smtp_config)], InMemoryLedger()
            )
            providers = []
            for request in requests:
                for attempt in range(50):
                    try:
                        delivery = await failover.deliver(request.model_copy(update={"resumed": attempt > 0}))
                    except (TransientSendError, ChannelPaused):
                        continue
                    providers.append(delivery.provider)
                    break
    finally:
        gateway.faults.release_hangs()
        await gateway.aclose()
        await sink.stop()
    assert len(providers) == len(requests) and {"unisender", "smtp"} <= set(providers)
    reached = messages_per_key([line.model_dump() for line in gateway.log.records("email")])
    by_message: dict[str, dict[str, int]] = {}
    for (_, key), count in reached.items():
        via = "smtp" if key.startswith("<") else "unisender"
        by_message.setdefault(key.strip("<>").partition("@")[0], {})[via] = count
    smtp_hangs = {
        r.key for r in gateway.requests.records("email") if r.endpoint == "data" and r.outcome == "hang"
    }
    assert set(by_message) == {email_api_id(r.dedup_key) for r in requests}
    for message_id, copies in by_message.items():
        assert len(copies) == 1, (message_id, copies)  # one provider per message
        if "unisender" in copies:
            assert copies["unisender"] == 1
        else:
            smtp_id = f"<{message_id}@alfa.example>"
            assert copies["smtp"] == 1 or (copies["smtp"] == 2 and smtp_id in smtp_hangs), copies
    outcomes = {r.outcome for r in gateway.requests.records("email")}
    assert {"error", "hang", "stall", "repeat"} <= outcomes, outcomes


async def test_gateway_mode_sends_email_through_the_fake_api_when_asked(tmp_path: Path) -> None:
    gateway = Gateway()
    sink = SmtpSink(gateway)
    await sink.start()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/g.db")
    await db.migrate()  # the failover's pins live in the outbox
    try:
        async with serve(create_app(gateway)) as url:
            settings = Settings(channels="gateway", gateway_url=url, gateway_smtp_port=sink.port)
            assert isinstance(build_channels(settings, db).provider(Channel.EMAIL), EmailProvider)  # default
            api_first = build_channels(settings.model_copy(update={"gateway_email": "api"}), db)
            email = api_first.provider(Channel.EMAIL)
            assert isinstance(email, FailoverProvider)
            delivery = await email.deliver(email_request())
    finally:
        await sink.stop()
        await gateway.aclose()
        await db.dispose()
    assert delivery.provider == "unisender" and delivery.message_id == email_api_id(email_request().dedup_key)
    assert [(r.endpoint, r.outcome) for r in gateway.requests.records("email")] == [("send", "accepted")]

"""SMSC.ru adapter: request shape, dedup by client id + status check, every error code, callbacks."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request

from fake_providers import FaultConfig, Gateway, GatewayConfig, create_app, messages_per_key
from renewals.channels.base import PermanentSendError
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.channels.smsc import (
    DeliveryStatus,
    SmscConfig,
    SmscProvider,
    parse_status_callback,
    smsc_message_id,
)
from renewals.webhooks.auth import authentic
from renewals.webhooks.payloads import SmsCallback
from tests.test_gateway_helpers import PHONE, asgi_client, mock_client, send_request, serve

CONFIG = SmscConfig(base_url="https://smsc.test", login="acme", password="s3cret", sender="ALFA")


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


def smsc(handler: object, **overrides: object) -> SmscProvider:
    return SmscProvider(CONFIG.model_copy(update=overrides), client=mock_client(handler))


def test_message_id_is_stable_and_in_smsc_range() -> None:
    key = send_request().dedup_key
    assert smsc_message_id(key) == smsc_message_id(key)
    assert smsc_message_id(key) != smsc_message_id(key + "x")
    assert all(1 <= smsc_message_id(f"k{i}") <= 2**31 - 1 for i in range(500))


async def test_first_attempt_posts_form_with_client_id_without_status_query() -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, form(request)))
        return httpx.Response(200, json={"id": int(form(request)["id"]), "cnt": 1})

    request = send_request()
    message_id = await smsc(handler).send(request)

    assert message_id == str(smsc_message_id(request.dedup_key))
    assert [path for path, _ in seen] == ["/sys/send.php"]  # a fresh key: nothing to reconcile
    sent = seen[0][1]
    assert sent["phones"] == "79161234567" and sent["mes"] == request.text and sent["sender"] == "ALFA"
    assert sent["id"] == message_id and sent["fmt"] == "3" and sent["psw"] == "s3cret"
    assert all("s3cret" not in str(path) for path, _ in seen)  # the password never goes in a URL


async def test_resumed_send_checks_status_first_then_sends() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/sys/status.php":
            assert form(request)["id"] == str(smsc_message_id(send_request().dedup_key))
            return httpx.Response(200, json={"error": "message not found", "error_code": 3})
        return httpx.Response(200, json={"id": int(form(request)["id"]), "cnt": 1})

    await smsc(handler).send(send_request(resumed=True))
    assert paths == ["/sys/status.php", "/sys/send.php"]
    paths.clear()
    await smsc(handler, check_before_send=False).send(send_request(resumed=True))
    assert paths == ["/sys/send.php"]


async def test_resumed_send_returns_existing_id_without_sending_again() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json={"status": 1, "last_date": "01.04.2027 10:00:00", "err": 0})

    request = send_request(resumed=True)
    assert await smsc(handler).send(request) == str(smsc_message_id(request.dedup_key))
    assert paths == ["/sys/status.php"]


async def test_invalid_phone_is_rejected_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(PermanentSendError) as caught:
        await smsc(handler).send(send_request(recipient="12345"))
    assert caught.value.error_type == "InvalidPhone"
    assert "12345" not in str(caught.value) or "***" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "kind", "error_type"),
    [
        (1, PermanentSendError, "InvalidRequest"),
        (2, ChannelPaused, "AuthFailed"),
        (3, ChannelPaused, "InsufficientFunds"),
        (4, RateLimited, "RateLimited"),
        (5, PermanentSendError, "InvalidRequest"),
        (6, PermanentSendError, "ForbiddenText"),
        (7, PermanentSendError, "InvalidPhone"),
        (8, PermanentSendError, "StopListed"),
        (9, RateLimited, "RateLimited"),
        (42, ProviderUnavailable, "ProviderUnavailable"),
    ],
)
async def test_send_error_codes(code: int, kind: type[Exception], error_type: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": "описание", "error_code": code})

    with pytest.raises(kind) as caught:
        await smsc(handler, check_before_send=False).send(send_request())
    assert getattr(caught.value, "error_type", None) == error_type
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 60.0
    if isinstance(caught.value, ProviderUnavailable):  # SMSC answered something we don't know:
        assert caught.value.maybe_accepted and caught.value.answered  # it may have kept the message


async def test_status_query_errors_are_classified_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": "authorise error", "error_code": 2})

    paths: list[str] = []

    def counting(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return handler(request)

    with pytest.raises(ChannelPaused):
        await smsc(counting).send(send_request(resumed=True))
    assert paths == ["/sys/status.php"]


@pytest.mark.parametrize(
    ("response", "maybe_accepted", "answered"),
    [
        (httpx.Response(503, text="busy"), False, False),  # turned away
        (httpx.Response(500, text="oops"), True, True),  # failed after taking the request
        (httpx.Response(502), True, True),
        (httpx.Response(504), True, False),  # a proxy gave up: SMSC may still be working on it
        (httpx.Response(200, text="OK - 1 SMS, ID - 1"), True, True),  # an accept we can't read
    ],
)
async def test_http_failures_are_transient(
    response: httpx.Response, maybe_accepted: bool, answered: bool
) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await smsc(lambda request: response, check_before_send=False).send(send_request())
    assert (caught.value.maybe_accepted, caught.value.answered) == (maybe_accepted, answered)


async def test_http_429_is_rate_limited_with_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"})

    with pytest.raises(RateLimited) as caught:
        await smsc(handler, check_before_send=False).send(send_request())
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("exc", "maybe_accepted"),
    [(httpx.ConnectError("refused"), False), (httpx.ReadTimeout("slow"), True)],
)
async def test_transport_errors(exc: Exception, maybe_accepted: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(ProviderUnavailable) as caught:
        await smsc(handler, check_before_send=False).send(send_request())
    assert caught.value.maybe_accepted is maybe_accepted
    assert "s3cret" not in str(caught.value) and "smsc.test" not in str(caught.value)


def test_parse_status_callback() -> None:
    report = parse_status_callback({"id": "123", "phone": "79161234567", "status": "1", "err": "0"})
    assert (report.message_id, report.status, report.error_code) == ("123", DeliveryStatus.DELIVERED, None)
    failed = parse_status_callback({"id": "5", "phone": "7", "status": "22", "err": "1"})
    assert failed.status is DeliveryStatus.FAILED and failed.error_code == 1
    assert parse_status_callback({"id": "5", "status": "-1"}).status is DeliveryStatus.PENDING
    with pytest.raises(ValueError):
        parse_status_callback({"phone": "7"})


# ---- against the fake providers -------------------------------------------------------------------


def gateway_smsc(gateway: Gateway, **overrides: object) -> SmscProvider:
    config = SmscConfig(base_url="http://gw", login="acme", password="s3cret").model_copy(update=overrides)
    return SmscProvider(config, client=asgi_client(gateway))


async def test_gateway_resumed_send_reconciles_and_a_blind_repeat_is_a_second_sms() -> None:
    gateway = Gateway(GatewayConfig(smsc_login="acme", smsc_password="s3cret"))
    provider = gateway_smsc(gateway)
    request = send_request()
    first = await provider.send(request)
    assert await provider.send(send_request(resumed=True)) == first  # the status query finds it
    other = await provider.send(send_request(touchpoint="d-5-sms"))
    assert first != other
    records = gateway.log.records("sms")
    assert [r.provider_id for r in records] == [first, other]
    assert records[0].recipient == "79161234567" and records[0].text == request.text
    # Like SMSC, the gateway does not refuse a repeated id: without the query it is a second SMS.
    await gateway_smsc(gateway, check_before_send=False).send(send_request(resumed=True))
    assert messages_per_key(r.model_dump() for r in gateway.log.records("sms"))[("sms", records[0].key)] == 2


async def test_gateway_faults_reach_the_adapter() -> None:
    gateway = Gateway(GatewayConfig(faults=FaultConfig(error_rate=1.0)))
    with pytest.raises(ProviderUnavailable):
        await gateway_smsc(gateway).send(send_request())

    gateway.configure_faults(FaultConfig(rate_limit_rate=1.0))
    with pytest.raises(RateLimited):
        await gateway_smsc(gateway, check_before_send=False).send(send_request())

    gateway.configure_faults(FaultConfig(invalid_phones=[PHONE]))
    with pytest.raises(PermanentSendError) as invalid:
        await gateway_smsc(gateway).send(send_request())
    assert invalid.value.error_type == "InvalidPhone"

    gateway.configure_faults(FaultConfig(insufficient_funds=True))
    with pytest.raises(ChannelPaused) as paused:
        await gateway_smsc(gateway).send(send_request())
    assert paused.value.error_type == "InsufficientFunds"

    with pytest.raises(ChannelPaused) as auth:
        bad = Gateway(GatewayConfig(smsc_login="acme", smsc_password="other"))
        await gateway_smsc(bad).send(send_request())
    assert auth.value.error_type == "AuthFailed"
    assert gateway.log.records() == []


async def test_timeout_after_accept_then_retry_sends_once() -> None:
    """The answer is lost (the gateway hangs past the client timeout); the retry finds the message."""
    gateway = Gateway(GatewayConfig(faults=FaultConfig(timeout_rate=1.0, hang_seconds=5)))
    async with serve(create_app(gateway)) as url:
        config = SmscConfig(base_url=url, login="acme", password="x", timeout_seconds=0.3)
        provider = SmscProvider(config)
        request = send_request()
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.send(request)
        assert caught.value.maybe_accepted
        gateway.faults.release_hangs()
        gateway.configure_faults(FaultConfig())
        retry = request.model_copy(update={"resumed": True})  # what the activity's retry sends
        assert await provider.send(retry) == str(smsc_message_id(request.dedup_key))
        await provider.aclose()
    assert len(gateway.log.records("sms")) == 1
    assert [r.outcome for r in gateway.requests.records("sms")] == ["hang", "found"]


async def test_timeout_before_accept_then_retry_sends_once() -> None:
    """The gateway holds the request and drops it: ambiguous to the client, nothing was sent."""
    gateway = Gateway(GatewayConfig(faults=FaultConfig(stall_rate=1.0, hang_seconds=5)))
    async with serve(create_app(gateway)) as url:
        provider = SmscProvider(SmscConfig(base_url=url, login="acme", password="x", timeout_seconds=0.3))
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.send(send_request())
        assert caught.value.maybe_accepted and not caught.value.answered
        gateway.faults.release_hangs()
        gateway.configure_faults(FaultConfig())
        await provider.send(send_request(resumed=True))
        await provider.aclose()
    assert len(gateway.log.records("sms")) == 1
    assert [r.outcome for r in gateway.requests.records("sms")] == ["stall", "not_found", "accepted"]


async def test_gateway_posts_a_signed_delivery_callback_per_sms() -> None:
    received: list[tuple[bytes, str]] = []
    webhook = FastAPI()

    @webhook.post("/webhooks/sms")
    async def sms_status(request: Request) -> dict[str, str]:
        received.append((await request.body(), request.headers.get("x-signature", "")))
        return {}

    callbacks = httpx.AsyncClient(transport=httpx.ASGITransport(app=webhook))
    config = GatewayConfig(sms_webhook_url="http://hooks/webhooks/sms", sms_webhook_secret="hook-secret")
    gateway = Gateway(config, callback_client=callbacks)
    message_id = await gateway_smsc(gateway).send(send_request())
    await gateway.drain_callbacks()
    assert len(received) == 1
    body, signature = received[0]
    assert authentic("hook-secret", body, signature, None)  # what our webhook service checks
    callback = SmsCallback.model_validate_json(body)  # and the JSON it accepts
    assert (callback.type, callback.message_id) == ("delivered", message_id)
    report = parse_status_callback(json.loads(body))  # SMSC's own fields ride along
    assert (report.message_id, report.status, report.phone) == (
        message_id,
        DeliveryStatus.DELIVERED,
        "79161234567",
    )
    await gateway_smsc(gateway).send(send_request(resumed=True))  # reconciled: no SMS, no report
    await gateway.drain_callbacks()
    assert len(received) == 1


async def test_status_lookup_via_gateway() -> None:
    gateway = Gateway()
    provider = gateway_smsc(gateway)
    request = send_request()
    assert await provider.lookup(request) is None
    message_id = await provider.send(request)
    assert await provider.lookup(request) == message_id
    report = await provider.status(message_id, "79161234567")
    assert report is not None and report.status is DeliveryStatus.DELIVERED

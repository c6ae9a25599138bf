"""VK community messages adapter: one call per send, deterministic random_id, every error class."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest

from fake_providers import FaultConfig, Gateway, GatewayConfig, messages_per_key
from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.channels.vk import VkConfig, VkProvider, vk_random_id
from renewals.models import Channel
from tests.test_gateway_helpers import asgi_client, mock_client, send_request

CONFIG = VkConfig(base_url="https://vk.test/method", access_token="tok", group_id=777, api_version="5.199")
USER = "123456"


def vk_request(recipient: str = USER, touchpoint: str = "d-30-vk") -> SendRequest:
    return send_request(channel=Channel.VK, recipient=recipient, touchpoint=touchpoint)


def vk_error(code: int, msg: str = "error") -> httpx.Response:
    return httpx.Response(200, json={"error": {"error_code": code, "error_msg": msg, "request_params": []}})


def provider(handler: object) -> VkProvider:
    return VkProvider(CONFIG, client=mock_client(handler))


def test_random_id_is_a_stable_positive_int32() -> None:
    key = vk_request().dedup_key
    assert vk_random_id(key) == vk_random_id(key) != vk_random_id(key + "!")
    assert all(0 < vk_random_id(f"k{i}") < 2**31 for i in range(500))


@pytest.mark.parametrize("resumed", [False, True])
async def test_one_call_sends_with_random_id_resumed_or_not(resumed: bool) -> None:
    """No permission check first (it doubled the calls: VK's send refuses a forbidding user itself),
    and a resumed send is the very same call: VK drops the repeated random_id."""
    calls: list[tuple[str, dict[str, str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.path.rsplit("/", 1)[1], dict(parse_qsl(request.content.decode()))))
        return httpx.Response(200, json={"response": 4242})

    request = vk_request().model_copy(update={"resumed": resumed})
    assert await provider(handler).send(request) == "4242"
    assert [name for name, _ in calls] == ["messages.send"]
    sent = calls[0][1]
    assert sent["user_id"] == USER and sent["message"] == request.text
    assert sent["random_id"] == str(vk_random_id(request.dedup_key))
    assert sent["access_token"] == "tok" and sent["v"] == "5.199"


async def test_non_numeric_recipient_is_permanent() -> None:
    with pytest.raises(PermanentSendError) as caught:
        await provider(lambda r: httpx.Response(500)).send(vk_request(recipient="id_durov"))
    assert caught.value.error_type == "InvalidRecipient"


@pytest.mark.parametrize(
    ("code", "kind", "error_type", "retry_after"),
    [
        (5, ChannelPaused, "AuthFailed", None),
        (7, ChannelPaused, "AuthFailed", None),
        (6, RateLimited, "RateLimited", 1.0),
        (9, RateLimited, "RateLimited", 300.0),
        (29, RateLimited, "RateLimited", 300.0),
        (10, ProviderUnavailable, "ProviderUnavailable", None),
        (900, PermanentSendError, "NotAllowedByRecipient", None),
        (901, PermanentSendError, "NotAllowedByRecipient", None),
        (902, PermanentSendError, "NotAllowedByRecipient", None),
        (113, PermanentSendError, "InvalidRecipient", None),
        (100, PermanentSendError, "InvalidRequest", None),
        (1, ProviderUnavailable, "ProviderUnavailable", None),
    ],
)
async def test_error_codes_on_send(
    code: int, kind: type[Exception], error_type: str, retry_after: float | None
) -> None:
    with pytest.raises(kind) as caught:
        await provider(lambda r: vk_error(code)).send(vk_request())
    assert getattr(caught.value, "error_type", None) == error_type
    if retry_after is not None:
        assert getattr(caught.value, "retry_after", None) == retry_after


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(502), ProviderUnavailable),
        (httpx.Response(200, text="<html>"), ProviderUnavailable),
        (httpx.Response(200, json={"weird": 1}), ProviderUnavailable),
    ],
)
async def test_malformed_answers_are_transient(response: httpx.Response, kind: type[Exception]) -> None:
    with pytest.raises(kind):
        await provider(lambda r: response).send(vk_request())


async def test_read_timeout_may_have_been_accepted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ProviderUnavailable) as caught:
        await provider(handler).send(vk_request())
    assert caught.value.maybe_accepted


# ---- against the fake providers -------------------------------------------------------------------


def gateway_vk(gateway: Gateway) -> VkProvider:
    return VkProvider(CONFIG.model_copy(update={"base_url": "http://gw/method"}), client=asgi_client(gateway))


async def test_gateway_dedups_on_random_id() -> None:
    gateway = Gateway(GatewayConfig(vk_token="tok"))
    vk = gateway_vk(gateway)
    first = await vk.send(vk_request())
    assert await vk.send(vk_request()) == first
    assert await vk.send(vk_request(touchpoint="d-5-vk")) != first
    records = gateway.log.records("vk")
    assert [(r.repeat, r.deduplicated) for r in records] == [(False, False), (True, True), (False, False)]
    assert records[0].key == f"{vk_random_id(vk_request().dedup_key)}:{USER}"
    assert sorted(messages_per_key(r.model_dump() for r in records).values()) == [1, 1]


@pytest.mark.parametrize("resumed", [False, True])
async def test_gateway_a_user_who_forbids_messages_is_refused_by_vk_itself(resumed: bool) -> None:
    gateway = Gateway(GatewayConfig(faults=FaultConfig(blocked_recipients=[USER])))
    with pytest.raises(PermanentSendError) as caught:
        await gateway_vk(gateway).send(vk_request().model_copy(update={"resumed": resumed}))
    assert caught.value.error_type == "NotAllowedByRecipient"
    assert [(r.endpoint, r.outcome) for r in gateway.requests.records("vk")] == [("send", "rejected:901")]


async def test_gateway_faults_reach_the_adapter() -> None:
    gateway = Gateway(GatewayConfig(faults=FaultConfig(error_rate=1.0)))
    with pytest.raises(ProviderUnavailable):
        await gateway_vk(gateway).send(vk_request())
    gateway.configure_faults(FaultConfig(rate_limit_rate=1.0))
    with pytest.raises(RateLimited):
        await gateway_vk(gateway).send(vk_request())
    gateway.configure_faults(FaultConfig(blocked_recipients=[USER]))
    with pytest.raises(PermanentSendError) as blocked:
        await gateway_vk(gateway).send(vk_request())
    assert blocked.value.error_type == "NotAllowedByRecipient"
    with pytest.raises(ChannelPaused):
        await gateway_vk(Gateway(GatewayConfig(vk_token="other"))).send(vk_request())
    assert gateway.log.records() == []

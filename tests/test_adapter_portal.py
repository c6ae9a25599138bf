"""Agent portal client: bearer auth, 404 = nothing yet, agent cards, errors."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from fake_providers import FaultConfig, Gateway, GatewayConfig
from fake_providers.app import PortalAgent, PortalRenewal
from renewals.activity_io import PortalQuery, PortalStatus
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.channels.portal_http import AgentCard, PortalHttpClient, PortalHttpConfig
from tests.test_gateway_helpers import asgi_client, mock_client

CONFIG = PortalHttpConfig(base_url="https://portal.test", token="t0ken")
QUERY = PortalQuery(policy_number="AB 123/45", expires_on=date(2027, 4, 20))


async def test_renewal_status_request_and_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"draft": True, "quote": True, "paid": False})

    status = await PortalHttpClient(CONFIG, client=mock_client(handler)).renewal_status(QUERY)
    assert status == PortalStatus(draft=True, quote=True, paid=False)
    assert seen[0].url.raw_path == b"/api/v1/renewals/AB%20123%2F45?expires_on=2027-04-20"
    assert seen[0].headers["authorization"] == "Bearer t0ken"


async def test_404_means_nothing_yet() -> None:
    client = PortalHttpClient(CONFIG, client=mock_client(lambda r: httpx.Response(404, json={})))
    assert await client.renewal_status(QUERY) == PortalStatus()
    assert await client.agent("A-1") is None


async def test_agent_card() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/agents/A-1"
        return httpx.Response(200, json={"id": "A-1", "name": "Иванова Мария", "phone": "+79161234567"})

    card = await PortalHttpClient(CONFIG, client=mock_client(handler)).agent("A-1")
    assert card == AgentCard(id="A-1", name="Иванова Мария", phone="+79161234567")


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(401), ChannelPaused),
        (httpx.Response(429, headers={"Retry-After": "3"}), RateLimited),
        (httpx.Response(500), ProviderUnavailable),
        (httpx.Response(400), ProviderUnavailable),
        (httpx.Response(200, text="nope"), ProviderUnavailable),
    ],
)
async def test_errors(response: httpx.Response, kind: type[Exception]) -> None:
    with pytest.raises(kind):
        await PortalHttpClient(CONFIG, client=mock_client(lambda r: response)).renewal_status(QUERY)


async def test_connect_error_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(ProviderUnavailable):
        await PortalHttpClient(CONFIG, client=mock_client(handler)).agent("A-1")


async def test_against_gateway() -> None:
    gateway = Gateway(GatewayConfig(portal_token="t0ken"))
    client = PortalHttpClient(
        CONFIG.model_copy(update={"base_url": "http://gw"}), client=asgi_client(gateway)
    )
    assert await client.renewal_status(QUERY) == PortalStatus()
    gateway.renewals[(QUERY.policy_number, QUERY.expires_on)] = PortalRenewal(draft=True)
    gateway.agents["A-1"] = PortalAgent(id="A-1", name="Иванова", phone=None)
    assert await client.renewal_status(QUERY) == PortalStatus(draft=True)
    assert await client.agent("A-1") == AgentCard(id="A-1", name="Иванова")
    gateway.configure_faults(FaultConfig(error_rate=1.0))
    with pytest.raises(ProviderUnavailable):
        await client.renewal_status(QUERY)
    wrong = PortalHttpClient(
        PortalHttpConfig(base_url="http://gw", token="wrong"),
        client=asgi_client(Gateway(GatewayConfig(portal_token="t0ken"))),
    )
    with pytest.raises(ChannelPaused):
        await wrong.renewal_status(QUERY)

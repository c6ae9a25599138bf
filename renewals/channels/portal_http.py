"""The agent portal «Альфа-Полис» over its HTTP API (contract: docs/portal_api.md).

`renewal_status` is the `AgentPortal` interface; `agent` reads an agent's card (`AgentCards`: the
journey reads it before a base SMS quotes the agent's phone, which agents keep current there). A 404
for a renewal means the agent has not started it yet (`PortalStatus()`), not an error; for an agent,
that the portal does not know them (None).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import AgentCardAnswer, PortalQuery, PortalStatus
from renewals.channels.errors import ProviderUnavailable, answered, api_client, json_object
from renewals.phones import InvalidPhone, to_e164


class PortalHttpConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    token: SecretStr
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0


class AgentCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    phone: str | None = None


@runtime_checkable
class AgentCards(Protocol):
    """A portal that can show an agent's card. Optional beside `AgentPortal`: a portal without it
    (a test double) leaves the journey with the imported card."""

    async def agent(self, agent_id: str) -> AgentCard | None: ...


class PortalHttpClient:
    """`AgentPortal` backed by the portal's HTTP API."""

    name = "portal"

    def __init__(self, config: PortalHttpConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client, self._base = api_client(config, client)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def renewal_status(self, query: PortalQuery) -> PortalStatus:
        body = await self._get(
            f"/api/v1/renewals/{quote(query.policy_number, safe='')}",
            {"expires_on": query.expires_on.isoformat()},
        )
        if body is None:
            return PortalStatus()
        return PortalStatus(
            draft=bool(body.get("draft")), quote=bool(body.get("quote")), paid=bool(body.get("paid"))
        )

    async def agent(self, agent_id: str) -> AgentCard | None:
        """The agent's card, or None when the portal does not know the agent."""
        body = await self._get(f"/api/v1/agents/{quote(agent_id, safe='')}", {})
        return None if body is None else AgentCard.model_validate(body)

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {self.config.token.get_secret_value()}"}
        response = await answered(
            self.name, self._client.get(self._base + path, params=params, headers=headers)
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ProviderUnavailable(f"{self.name}: HTTP {response.status_code}", provider=self.name)
        return json_object(self.name, response)


async def current_agent_phone(portal: object, agent_id: str) -> AgentCardAnswer:
    """The phone on the agent's card in the portal now, in E.164; or none, with why, when the portal
    has no cards, does not know the agent, or the card's phone is missing or unusable — the journey
    keeps the imported one then. A portal that cannot answer raises (the activity retries, then the
    journey falls back to the imported card too)."""
    if not isinstance(portal, AgentCards):
        return AgentCardAnswer(note="the portal shows no agent cards")
    card = await portal.agent(agent_id)
    if card is None:
        return AgentCardAnswer(note=f"agent {agent_id} unknown in the portal")
    if not card.phone:
        return AgentCardAnswer(note="no phone on the agent's card")
    try:
        return AgentCardAnswer(phone=to_e164(card.phone))
    except InvalidPhone as error:
        return AgentCardAnswer(note=f"the card's phone is unusable: {error}")

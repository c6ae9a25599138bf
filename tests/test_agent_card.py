"""The agent's phone in a base SMS comes from the agent's card in Альфа-Полис (issue 13): read through
the real portal client (`PortalHttpClient`, against httpx.MockTransport or the fake gateway served by
uvicorn) by the journey on the time-skipping server just before the SMS is rendered; the imported card
when the portal is down, slow, does not know the agent or gives no usable phone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Replayer

from fake_providers import FaultConfig, Gateway, GatewayConfig, create_app
from fake_providers.app import PortalAgent
from renewals.activity_io import AgentCardAnswer
from renewals.channels.portal_http import PortalHttpClient, PortalHttpConfig, current_agent_phone
from renewals.channels.recording import DatabasePortal
from renewals.db.database import Database
from renewals.db.tables import AgentRow
from renewals.journey_api import JourneyStatus
from renewals.phones import for_reading
from tests.factories import policy
from tests.harness import INTAKE, channels_with, journey_harness, msk
from tests.keys import TEST_CONVERTER
from tests.test_gateway_helpers import mock_client, serve
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER

IMPORTED = "+79031112233"  # the factories' agent A1, as imported
CURRENT = "+79035556677"  # what the agent has since written on their card in Альфа-Полис
CONFIG = PortalHttpConfig(base_url="https://portal.test", token="t0ken")


def portal_answering(agent: Callable[[], httpx.Response]) -> tuple[PortalHttpClient, list[str]]:
    """The real portal client over a mock transport: `agent()` answers the card requests; the renewal
    checks (the −5 condition) find nothing started. Returns the client and the paths it was asked."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        assert request.headers["authorization"] == "Bearer t0ken"
        if request.url.path == "/api/v1/agents/A1":
            return agent()
        return httpx.Response(404, json={"error": {"code": "not_found"}})

    return PortalHttpClient(CONFIG, client=mock_client(handler)), asked


def card(phone: str | None) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(200, json={"id": "A1", "name": "Петрова Анна", "phone": phone})


def sms_texts(status: JourneyStatus) -> dict[str, str]:
    return {e.template: e.text or "" for e in status.timeline if e.status.value == "sent"}


async def run_to_minus_45(tmp_path: Path, portal: object, number: str) -> JourneyStatus:
    """A КАСКО client of the base segment, taken in on 1 March: its −45 SMS (6 March) quotes the agent."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/card.db")
    async with journey_harness(tmp_path, channels_with(db, portal=portal), db) as h:
        handle = await h.start(policy("KASKO", number=number), INTAKE)
        await h.skip_to(msk(3, 6, 23))
        status = await handle.query(RenewalJourney.status)
    await db.dispose()
    return status


async def test_the_sms_says_the_phone_on_the_agents_card_in_the_portal(tmp_path: Path) -> None:
    """The portal's phone goes out at −45; the journey keeps it in its policy, so the −5 SMS says it
    too even though the portal is down by then."""
    answers = [card(CURRENT)]
    portal, asked = portal_answering(lambda: answers[-1]())
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/card.db")
    async with journey_harness(tmp_path, channels_with(db, portal=portal), db) as h:
        handle = await h.start(policy("KASKO", number="CARD-1"), INTAKE)
        await h.skip_to(msk(3, 6, 23))
        first = await handle.query(RenewalJourney.status)
        answers.append(lambda: httpx.Response(503, json={"error": "maintenance"}))
        final = await handle.result()
        history = await handle.fetch_history()
    await db.dispose()

    assert f"Тел. {for_reading(CURRENT)}" in sms_texts(first)["base_kasko_45"]
    assert for_reading(IMPORTED) not in sms_texts(first)["base_kasko_45"]
    assert [e.type for e in first.events] == ["agent_card_updated"]
    assert "/api/v1/agents/A1" in asked
    assert f"(тел. {for_reading(CURRENT)})" in sms_texts(final)["base_kasko_5"]
    assert "agent_card_unavailable" in [e.type for e in final.events]  # −5: down, the copy's phone went
    # The new path (behind `agent-card-phone`) replays deterministically in the workers' sandbox.
    replayer = Replayer(
        workflows=[RenewalJourney], workflow_runner=SANDBOXED_RUNNER, data_converter=TEST_CONVERTER
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


@pytest.mark.parametrize(
    ("answer", "note"),
    [
        (lambda: httpx.Response(503, json={"error": "maintenance"}), "agent_card_unavailable"),
        (lambda: (_ for _ in ()).throw(httpx.ConnectError("refused")), "agent_card_unavailable"),
        (lambda: httpx.Response(404, json={"error": {"code": "not_found"}}), None),  # unknown agent
        (card(None), None),  # the card has no phone
        (card("12"), None),  # nor a usable one
    ],
    ids=["portal 503", "portal unreachable", "unknown agent", "card without phone", "unusable phone"],
)
async def test_the_imported_phone_goes_out_when_the_portal_has_no_usable_card(
    tmp_path: Path, answer: Callable[[], httpx.Response], note: str | None
) -> None:
    portal, asked = portal_answering(answer)
    status = await run_to_minus_45(tmp_path, portal, "CARD-2")
    assert f"Тел. {for_reading(IMPORTED)}" in sms_texts(status)["base_kasko_45"]
    assert "/api/v1/agents/A1" in asked  # it was asked
    assert [e.type for e in status.events] == ([note] if note else [])


async def test_a_slow_portal_does_not_hold_the_sms_back(tmp_path: Path) -> None:
    """The fake Альфа-Полис, served over HTTP, knows the new phone but holds every answer back; the
    client gives up after its timeout, and after a few attempts the journey sends with the imported
    card — on the −45 day itself, at the window's opening."""
    gateway = Gateway(GatewayConfig(portal_token="t0ken"))
    gateway.agents["A1"] = PortalAgent(id="A1", name="Петрова Анна", phone=CURRENT)
    gateway.configure_faults(FaultConfig(timeout_rate=1.0, channels=["portal"], hang_seconds=60))
    try:
        async with serve(create_app(gateway)) as url:
            config = CONFIG.model_copy(update={"base_url": url, "timeout_seconds": 0.2})
            status = await run_to_minus_45(tmp_path, PortalHttpClient(config), "CARD-3")
            gateway.faults.release_hangs()
    finally:
        gateway.faults.release_hangs()
    [sent] = [e for e in status.timeline if e.template == "base_kasko_45"]
    assert f"Тел. {for_reading(IMPORTED)}" in (sent.text or "")
    assert sent.at.astimezone(msk(3, 6).tzinfo).date() == msk(3, 6).date()
    [unavailable] = [e for e in status.events if e.type == "agent_card_unavailable"]
    assert "portal" in (unavailable.detail or "")


async def test_the_recording_portal_answers_with_the_imported_card(tmp_path: Path) -> None:
    """`renewals simulate` and `channels=database` have no Альфа-Полис: the database's portal shows the
    imported card, so their texts quote the imported phone as before (tests/golden/ unchanged)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/cards.db")
    await db.migrate()
    try:
        async with db.session() as session, session.begin():
            session.add(AgentRow(id="A-7", name="Сидорова Ольга", phone="+79037778899"))
        portal = DatabasePortal(db)
        assert await current_agent_phone(portal, "A-7") == AgentCardAnswer(phone="+79037778899")
        assert (await current_agent_phone(portal, "nobody")).phone is None
    finally:
        await db.dispose()
    assert (await current_agent_phone(object(), "A-7")).phone is None  # a portal without cards

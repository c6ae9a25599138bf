"""`POST /partners/{partner}/applications/{id}/status` through the webhook service's app against a
real PartnerApplication journey on the time-skipping server: unsigned 401, invalid 422 naming the
field, a move the journey refuses 422 with its reason, unknown 404, finished 409, too large 413 —
none of them reaching the journey's history — and a valid change applied (200)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.sla import SlaActivities
from renewals.db.database import Database
from renewals.sla.models import (
    ApplicationInput,
    ApplicationStatus,
    Responsible,
    SlaStatus,
    application_workflow_id,
)
from renewals.sla.targets import SlaTargets
from renewals.webhooks.app import create_app
from renewals.webhooks.auth import sign
from renewals.webhooks.partners import signed_message
from starter.sla.operations import start_application
from starter.sla.simulate import register_sla_search_attributes, sla_worker
from tests.sla_support import RecordingNotifier, move_clock_to, time_skipping_env
from workflows.sla import PartnerApplication

QUEUE = "partner-route"
PARTNER = "realty-7"
SECRET = "partners-secret"
SECRETS = {"partners": SECRET, "sms": "sms-secret"}
UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED

Journey = WorkflowHandle[PartnerApplication, ApplicationStatus]


@dataclass
class Route:
    http: httpx.AsyncClient
    journey: Journey

    async def post(
        self,
        payload: Any,
        application: str = "app-1",
        partner: str = PARTNER,
        secret: str | None = SECRET,
        raw: bytes | None = None,
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        path = f"/partners/{partner}/applications/{application}/status"
        if secret is not None:
            headers["X-Signature"] = sign(secret, signed_message(path, body))
        return await self.http.post(path, content=body, headers=headers)

    async def updates_accepted(self) -> int:
        history = await self.journey.fetch_history()
        return sum(event.event_type == UPDATE_ACCEPTED for event in history.events)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def route(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Route]:
    path: Path = tmp_path_factory.mktemp("partner-route") / "route.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    async for env in time_skipping_env():
        await register_sla_search_attributes(env.client)
        async with sla_worker(env.client, QUEUE, SlaActivities(db, RecordingNotifier())):
            submitted = await move_clock_to(env, "2027-05-12T10:00")  # a Wednesday
            application = ApplicationInput(
                id="app-1",
                partner=PARTNER,
                clocks=SlaTargets().clocks(),
                responsible=Responsible(client_contact="Анна"),
                submitted_at=submitted,
            )
            workflow_id = await start_application(env.client, application, QUEUE)
            journey = env.client.get_workflow_handle_for(PartnerApplication.run, workflow_id)
            app = create_app(db, env.client, SECRETS)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as http:
                yield Route(http, journey)
    await db.dispose()


async def test_unsigned_or_wrongly_signed_is_401_and_reaches_nothing(route: Route) -> None:
    change = {"status": "calculated", "by": "cabinet"}
    assert (await route.post(change, secret=None)).status_code == 401
    assert (await route.post(change, secret="sms-secret")).status_code == 401  # another source's secret
    forged = await route.post(change, raw=b'{"status": "calculated", "by": "x"}', secret=None)
    assert forged.status_code == 401
    assert await route.updates_accepted() == 0
    status = await route.journey.query(PartnerApplication.status)
    assert status.status is SlaStatus.SUBMITTED


@pytest.mark.parametrize(
    ("payload", "loc", "message"),
    [
        ({"status": "approved", "by": "cabinet"}, ["body", "status"], "Input should be"),
        ({"status": "calculated"}, ["body", "by"], "Field required"),
        ({"status": "calculated", "by": ""}, ["body", "by"], "at least 1 character"),
        ({"status": "calculated", "by": "c", "at": "2027-05-12T10:05:00"}, ["body", "at"], "timezone"),
        (
            {"status": "calculated", "by": "c", "client_phone": "+79161234567"},
            ["body", "client_phone"],
            "Extra",
        ),
        (["calculated"], ["body"], "should be an object"),
    ],
)
async def test_invalid_body_is_422_naming_the_field_without_echoing_it(
    route: Route, payload: Any, loc: list[str], message: str
) -> None:
    answer = await route.post(payload)
    assert answer.status_code == 422
    problems = answer.json()["detail"]
    assert any(p["loc"] == loc and message in p["msg"] for p in problems), problems
    assert "+79161234567" not in answer.text and "input" not in problems[0]
    assert await route.updates_accepted() == 0


async def test_bad_path_id_and_malformed_json_are_422(route: Route) -> None:
    too_long = await route.post({"status": "calculated", "by": "c"}, application="x" * 101)
    assert too_long.status_code == 422
    assert any(p["loc"] == ["path", "application_id"] for p in too_long.json()["detail"])
    broken = await route.post(None, raw=b'{"status": ')
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


async def test_a_move_the_journey_refuses_is_422_with_its_reason_and_not_stored(route: Route) -> None:
    answer = await route.post({"status": "issued", "by": "cabinet"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "application app-1: submitted → issued: a policy is issued only after payment (paid)"
    )
    assert await route.updates_accepted() == 0, "an update refused by its validator is not in history"


async def test_unknown_application_is_404(route: Route) -> None:
    answer = await route.post({"status": "calculated", "by": "cabinet"}, application="nope")
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        f"application nope of partner {PARTNER}: not found (workflow sla-realty-7-nope)"
    )


async def test_too_large_body_is_413(route: Route) -> None:
    answer = await route.post({"status": "calculated", "by": "c", "reason": "x" * 70_000})
    assert answer.status_code == 413


async def test_a_valid_change_is_applied_to_the_journey(route: Route) -> None:
    answer = await route.post(
        {
            "status": "calculated",
            "by": "Анна (cabinet)",
            "reason": "расчёт готов",
            "at": "2027-05-12T10:08:00+03:00",
        }
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["workflow_id"] == application_workflow_id(PARTNER, "app-1")
    assert result["status"] == "calculated" and result["finished"] is False and result["breaches"] == 0
    calculation = next(c for c in result["clocks"] if c["name"] == "calculation")
    assert calculation["stopped"] is not None and calculation["breached"] is False
    status = await route.journey.query(PartnerApplication.status)
    last = status.periods[-1]
    assert (last.status, last.by, last.reason) == (SlaStatus.CALCULATED, "Анна (cabinet)", "расчёт готов")
    assert await route.updates_accepted() == 1
    repeat = await route.post({"status": "calculated", "by": "cabinet"})
    assert repeat.status_code == 422 and "goes backwards or repeats" in repeat.json()["detail"]


async def test_a_finished_journey_is_409(route: Route) -> None:
    cancelled = await route.post({"status": "cancelled", "by": "cabinet", "reason": "клиент передумал"})
    assert cancelled.status_code == 200 and cancelled.json()["finished"] is True
    await route.journey.result()
    answer = await route.post({"status": "paid", "by": "cabinet"})
    assert answer.status_code == 409
    assert "its journey has finished (completed)" in answer.json()["detail"]


async def test_openapi_documents_the_route(route: Route) -> None:
    schema = (await route.http.get("/openapi.json")).json()
    operation = schema["paths"]["/partners/{partner}/applications/{application_id}/status"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["status", "by"] and "401" in operation["responses"]


async def test_a_signature_holds_for_its_own_application_only(route: Route) -> None:
    """The path is signed with the body: a captured, validly signed change replayed on another
    application (or partner) is refused before anything is parsed."""
    body = json.dumps({"status": "calculated", "by": "Анна (cabinet)"}).encode()
    captured = sign(SECRET, signed_message(f"/partners/{PARTNER}/applications/app-1/status", body))
    other = await route.http.post(
        f"/partners/{PARTNER}/applications/app-2/status",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": captured},
    )
    assert other.status_code == 401

"""`renewals stack` for real: its own code starts a dev server with the Web UI (on free ports), the fake
gateway, the sample journeys and the worker. The UI answers, every journey carries all its search
attributes and summaries, `renewals start` afterwards finds them running, and `renewals setup` lists the
attributes without adding them again — or, on Temporal Cloud, prints the `tcld` command instead. The UI
decodes payloads through the stack's codec server, which serves the UI's origin and nobody else."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payloads
from temporalio.api.common.v1 import WorkflowExecution as Execution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionDescription
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from renewals import search_attributes as sa
from renewals.journey_api import Stage
from renewals.models import Policy, journey_id
from renewals.sample import sample_portfolio
from renewals.sendwindow import SendWindow, zone
from renewals.settings import Settings
from renewals.temporal.journeys import start_journey
from renewals.temporal.setup import ALL_KEYS, is_cloud, setup_namespace
from starter import setup as setup_command
from starter.ops import ops
from starter.stack import _listening, run_stack, wait_for_temporal

SIX = (sa.POLICY_NUMBER, sa.PRODUCT, sa.JOURNEY_STAGE, sa.AGENT_ID, sa.RENEWAL_CENTRE, sa.EXPIRES_ON)
NOT_REGISTERED = SearchAttributeKey.for_keyword("StackTestNotRegistered")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningStack:
    settings: Settings
    client: Client
    ui: str
    portfolio: list[Policy]
    data: Path


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningStack]:
    data: Path = tmp_path_factory.mktemp("stack")
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        database_url=f"sqlite+aiosqlite:///{data}/renewals.db",
        gateway_url=f"http://127.0.0.1:{free_port()}",
        gateway_smtp_port=free_port(),
        webhooks_port=free_port(),
        codec_server_port=free_port(),
        metrics_address=f"127.0.0.1:{free_port()}",
        worker_health_address=f"127.0.0.1:{free_port()}",
        task_queue="stack-test",
        worker_shutdown_grace_seconds=1,
    )
    ui_port = free_port()
    running = asyncio.create_task(run_stack(settings, data, ui_port))
    try:
        client = await wait_for_temporal(settings)
        yield RunningStack(
            settings, client, f"http://127.0.0.1:{ui_port}", sample_portfolio(date.today()), data
        )
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert not _listening(settings.temporal_address)  # Ctrl-C stops the dev server it started
    assert not _listening(f"127.0.0.1:{settings.codec_server_port}")  # and its codec server


async def described_with_attributes(client: Client, workflow_id: str) -> WorkflowExecutionDescription:
    """The journey once its first workflow task has upserted its search attributes."""
    for _ in range(600):
        with contextlib.suppress(RPCError):
            description = await client.get_workflow_handle(workflow_id).describe()
            if all(description.typed_search_attributes.get(key) is not None for key in SIX):
                return description
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never got all its search attributes")


async def listed(client: Client, query: str) -> list[WorkflowExecution]:
    """Visibility follows the journey's own state by a moment: ask until the answer is there."""
    for _ in range(100):
        found = [wf async for wf in client.list_workflows(query)]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_the_dev_server_keeps_its_store_in_wal_mode(stack: RunningStack) -> None:
    # starter.stack.SQLITE_PRAGMAS: the mode is a property of the file, so reading it back proves the
    # server was started with the pragma (a rollback-journal store answers "delete").
    with contextlib.closing(sqlite3.connect(stack.data / "temporal.db")) as store:
        assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_stack_leaves_a_browsable_ui_with_every_search_attribute(
    stack: RunningStack, capsys: pytest.CaptureFixture[str]
) -> None:
    client = stack.client
    for policy in stack.portfolio:
        workflow_id = journey_id(policy.number, policy.expires_on)
        attributes = (await described_with_attributes(client, workflow_id)).typed_search_attributes
        centre = policy.regional_centre.id if policy.regional_centre else ""
        midnight = datetime.combine(policy.expires_on, time(0), tzinfo=zone(policy.client.timezone))
        assert (
            attributes.get(sa.POLICY_NUMBER),
            attributes.get(sa.PRODUCT),
            attributes.get(sa.AGENT_ID),
            attributes.get(sa.RENEWAL_CENTRE),
            attributes.get(sa.EXPIRES_ON),
        ) == (policy.number, policy.product.value, policy.agent.id, centre, midnight)
        assert attributes.get(sa.JOURNEY_STAGE) in {stage.value for stage in Stage}
        # The query an operator types into the UI's search box finds exactly this journey. The stage is
        # left out (a touchpoint due today moves it on at once); ExpiresOn is a range in the client's
        # own offset, as the README's "ends this week" query has it.
        exact = [
            f"{key.name} = '{attributes.get(key)}'" for key in (sa.POLICY_NUMBER, sa.PRODUCT, sa.AGENT_ID)
        ]
        next_day = midnight + timedelta(days=1)
        ends = f"ExpiresOn >= '{midnight.isoformat()}' AND ExpiresOn < '{next_day.isoformat()}'"
        [found] = await listed(client, " AND ".join([*exact, f"RenewalCentre = '{centre}'", ends]))
        assert found.id == workflow_id
        assert found.typed_search_attributes.get(sa.JOURNEY_STAGE) is not None

    centre_policy = next(p for p in stack.portfolio if p.renewal_centre)
    centre_id = journey_id(centre_policy.number, centre_policy.expires_on)
    description = await client.get_workflow_handle(centre_id).describe()
    assert (await description.static_summary() or "").startswith("Пролонгация")
    assert "**Renewal centre**" in (await description.static_details() or "")

    async with httpx.AsyncClient(base_url=stack.ui, timeout=10) as ui:
        page = await ui.get("/namespaces/default/workflows")
        assert page.status_code == 200 and "<html" in page.text.lower()
        answer = await ui.get(  # what the UI's workflow list fetches
            "/api/v1/namespaces/default/workflows",
            params={"query": f"PolicyNumber = '{centre_policy.number}'"},
        )
        [execution] = answer.json()["executions"]
        assert execution["execution"]["workflowId"] == centre_id
        assert {key.name for key in SIX} <= set(execution["searchAttributes"]["indexedFields"])

    # The stack recorded what it started, so the daily intake finds the journeys running, not changed.
    assert await ops(["start"], stack.settings) == 0
    assert f"already running: {len(stack.portfolio)}" in capsys.readouterr().out
    again = await start_journey(client, centre_policy, stack.settings.task_queue, SendWindow())
    assert again.result_run_id == description.run_id  # a second start attaches, never a second journey


async def test_setup_lists_existing_attributes_and_adds_none(
    stack: RunningStack, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await setup_namespace(stack.client, "default", ALL_KEYS)
    assert result.added == [] and result.manual == []
    assert result.present == sorted(key.name for key in ALL_KEYS)
    assert await setup_command.main(stack.settings) == 0
    out = capsys.readouterr().out
    assert "search attributes added: none" in out and "PolicyNumber" in out


async def test_setup_on_temporal_cloud_prints_the_tcld_command(
    stack: RunningStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert is_cloud(Settings(temporal_api_key=SecretStr("key")))
    assert is_cloud(Settings(temporal_address="renewals.a1b2c.tmprl.cloud:7233"))
    assert is_cloud(Settings(temporal_address="eu-west-1.aws.api.temporal.io:7233"))
    assert not is_cloud(Settings(temporal_address="127.0.0.1:7233"))

    # A Cloud namespace (here: the dev server, seen as Cloud) missing one attribute: nothing is added.
    keys = (*ALL_KEYS, NOT_REGISTERED)
    result = await setup_namespace(stack.client, "default", keys, cloud=True)
    assert result.added == [] and [key.name for key in result.manual] == [NOT_REGISTERED.name]
    assert result.tcld_command() == (
        "tcld namespace search-attributes add --namespace default "
        '--search-attribute "StackTestNotRegistered=Keyword"'
    )

    async def dev_client(_: Settings) -> Client:
        return stack.client

    monkeypatch.setattr(setup_command, "connect", dev_client)
    monkeypatch.setattr(setup_command, "ALL_KEYS", keys)
    cloud = stack.settings.model_copy(update={"temporal_api_key": SecretStr("key")})
    assert await setup_command.main(cloud) == 0  # told what to do, not failed
    out = capsys.readouterr().out
    assert '--search-attribute "StackTestNotRegistered=Keyword"' in out and "namespace admin" in out
    names = (await setup_namespace(stack.client, "default", keys, cloud=True)).present
    assert NOT_REGISTERED.name not in names  # still not added behind the admin's back


async def test_the_stack_serves_webhooks_that_refuse_unsigned_callbacks(stack: RunningStack) -> None:
    """The gateway's delivery reports and robot outcomes come back through this service, signed."""
    url = f"http://{stack.settings.webhooks_host}:{stack.settings.webhooks_port}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as hooks:
        for _ in range(100):  # the service starts with the worker, after the sample journeys
            with contextlib.suppress(httpx.TransportError):
                spec = await hooks.get("/openapi.json")
                break
            await asyncio.sleep(0.2)
        assert spec.status_code == 200 and "/webhooks/robot" in spec.json()["paths"]
        unsigned = await hooks.post(
            "/webhooks/robot", json={"event_id": "e1", "message_id": "x", "outcome": "agreed"}
        )
        assert unsigned.status_code == 401


async def test_the_ui_decodes_journeys_through_the_stacks_codec_server(stack: RunningStack) -> None:
    codec = f"http://127.0.0.1:{stack.settings.codec_server_port}"
    async with httpx.AsyncClient(base_url=stack.ui, timeout=10) as ui:
        assert (await ui.get("/api/v1/settings")).json()["Codec"]["Endpoint"] == codec
    policy = next(p for p in stack.portfolio if p.client.last_name == "Иванов")
    history = await stack.client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace="default", execution=Execution(workflow_id=journey_id(policy.number, policy.expires_on))
        )
    )
    sealed = history.history.events[0].workflow_execution_started_event_attributes.input
    assert "Иванов".encode() not in sealed.SerializeToString()  # what Temporal stores and shows
    body = json_format.MessageToJson(sealed)
    headers = {"Content-Type": "application/json", "X-Namespace": "default"}
    async with httpx.AsyncClient(base_url=codec, timeout=10) as server:
        local_ui = await server.post("/decode", content=body, headers={**headers, "Origin": stack.ui})
        assert local_ui.status_code == 200 and local_ui.headers["access-control-allow-origin"] == stack.ui
        assert "Иванов" in json_format.Parse(local_ui.content, Payloads()).payloads[0].data.decode()
        anyone = await server.post("/decode", content=body, headers=headers)  # no token, not the UI
        assert anyone.status_code == 401 and "payloads" not in anyone.json()
        foreign = await server.post(
            "/decode", content=body, headers={**headers, "Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403

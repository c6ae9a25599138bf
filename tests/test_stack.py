"""On the real dev server (the stack's default): journeys carry their search attributes and summaries,
so an operator finds and understands them in the Temporal UI; intake is idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.journey import JourneyActivities
from renewals.db.database import Database
from renewals.db.policies import upsert_policy
from renewals.journey import Stage
from renewals.sample import sample_portfolio
from renewals.search_attributes import ALL
from renewals.sendwindow import SendWindow
from starter.binaries import find_binary
from starter.journeys import start_journey
from starter.runtime import cli_runtime
from worker import build_worker, sandbox_channels
from workflows.renewal import RenewalJourney

QUEUE = "stack-test"


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=list(ALL),
        data_converter=pydantic_data_converter,
        runtime=cli_runtime(),
        ui=False,
    )
    yield env
    await env.shutdown()


async def test_journeys_are_searchable_and_summarised(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_server.client
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/stack.db")
    await db.migrate()
    portfolio = sample_portfolio(date.today())
    async with build_worker(client, QUEUE, JourneyActivities(db, sandbox_channels(db))):
        first = [await start_journey(client, p, QUEUE, SendWindow()) for p in portfolio]
        again = [await start_journey(client, p, QUEUE, SendWindow()) for p in portfolio]
        assert [h.result_run_id for h in again] == [h.result_run_id for h in first]  # attached, not new

        centre = next(p for p in portfolio if p.renewal_centre)
        handle = client.get_workflow_handle_for(RenewalJourney.run, first[portfolio.index(centre)].id)
        status = await handle.query(RenewalJourney.status)
        assert status.stage in (Stage.SCHEDULED, Stage.INFORMING, Stage.ROBOT_CALLING, Stage.OPERATOR)

        description = await handle.describe()
        assert (await description.static_summary() or "").startswith("Пролонгация КАСКО")
        assert "**Renewal centre** Москва (msk)" in (await description.static_details() or "")
        attributes = description.typed_search_attributes
        assert attributes.get(ALL[0]) == centre.number
        assert attributes.get(ALL[4]) == "msk"

        query = (
            f"PolicyNumber = '{centre.number}' AND RenewalCentre = 'msk' AND JourneyStage = '{status.stage}'"
        )
        found = [wf.id async for wf in client.list_workflows(query)]
        assert found == [handle.id]
        count = await client.count_workflows("WorkflowType = 'RenewalJourney'")
        assert count.count == len(portfolio)

    for policy in portfolio:
        await upsert_policy(db, policy)
        await upsert_policy(db, policy)
    from sqlalchemy import func, select

    from renewals.db.tables import ClientRow, PolicyRow

    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(PolicyRow))).scalar_one() == len(
            portfolio
        )
        assert (await session.execute(select(func.count()).select_from(ClientRow))).scalar_one() == 4
    await db.dispose()
    assert all(p.expires_on > date.today() + timedelta(days=10) for p in portfolio)

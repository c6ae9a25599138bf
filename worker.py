"""The worker process: runs renewal journeys and their activities against the configured Temporal.

`python worker.py` (or `renewals worker`) connects with the settings (RENEWALS_*), migrates the
database, and serves the task queue until interrupted. Several workers may run at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.journey import JourneyActivities
from renewals.channels.base import Channels
from renewals.channels.sandbox import DatabasePortal, SandboxMessages, SandboxRobot
from renewals.db.database import Database
from renewals.models import Channel
from renewals.settings import Settings, get_settings
from workflows.renewal import RenewalJourney

WORKFLOWS: list[type] = [RenewalJourney]

# Pure libraries the domain uses inside workflows (calendar, phones): loaded once, outside the sandbox.
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "renewals", "holidays", "dateutil", "six", "phonenumbers", "pydantic", "pydantic_core"
    )
)


def sandbox_channels(db: Database, robot: SandboxRobot | None = None) -> Channels:
    """Every channel through the development sandbox (the database records each message)."""
    messages = SandboxMessages(db)
    return Channels(
        {Channel.SMS: messages, Channel.EMAIL: messages, Channel.VK: messages},
        robot or SandboxRobot(db),
        DatabasePortal(db),
    )


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        tls=settings.temporal_tls,
        data_converter=pydantic_data_converter,
    )


def build_worker(
    client: Client,
    task_queue: str,
    activities: JourneyActivities,
    extra_workflows: Sequence[type] = (),
    fail_fast: bool = False,
) -> Worker:
    """A worker for journeys. `fail_fast` (tests, simulation) fails a workflow on any exception
    instead of retrying its task forever, so a bug shows up as an error rather than a hang."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=activities.all(),
        workflow_runner=SANDBOX,
        workflow_failure_exception_types=[Exception] if fail_fast else [],
    )


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    db = Database(settings.database_url)
    await db.migrate()
    client = await connect(settings)
    worker = build_worker(client, settings.task_queue, JourneyActivities(db, sandbox_channels(db)))
    logging.getLogger(__name__).info(
        "worker serving %s on %s", settings.task_queue, settings.temporal_address
    )
    try:
        await worker.run()
    finally:
        await db.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker())


if __name__ == "__main__":
    main()

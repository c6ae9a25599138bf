"""Running `renewals sla simulate`: every application side by side on a fresh time-skipping server,
and the public output (docs/sla.md) of each."""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Any

from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.sla import EscalationNotifier, SlaActivities
from renewals import search_attributes as sa
from renewals.db.database import Database
from renewals.encryption import settings_converter
from renewals.sendwindow import zone
from renewals.settings import get_settings
from renewals.sla.models import ApplicationStatus
from renewals.temporal.runtime import cli_runtime
from renewals.temporal.setup import register_search_attributes
from starter.binaries import find_binary
from starter.sla.inputs import Simulation, simulation_runs
from workflows.runner import SANDBOXED_RUNNER
from workflows.sla import PartnerApplication
from workflows.sla_simulation import SimulateApplication, SimulationRun

TASK_QUEUE = "sla-simulate"
SLA_WORKFLOWS: list[type] = [PartnerApplication]


async def register_sla_search_attributes(client: Client, namespace: str = "default") -> list[str]:
    """Add the SLA search attributes the namespace lacks (the test server cannot list: add all)."""
    return await register_search_attributes(client, namespace, sa.SLA)


def sla_worker(client: Client, task_queue: str, activities: SlaActivities, fail_fast: bool = True) -> Worker:
    """A worker for application journeys and their simulation driver (tests and `sla simulate`)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*SLA_WORKFLOWS, SimulateApplication],
        activities=activities.all(),
        workflow_runner=SANDBOXED_RUNNER,
        workflow_failure_exception_types=[Exception] if fail_fast else [],
    )


async def run_simulation(
    env: WorkflowEnvironment,
    runs: list[SimulationRun],
    activities: SlaActivities,
    task_queue: str = TASK_QUEUE,
) -> list[ApplicationStatus]:
    """All runs side by side on the environment's clock; time skips once everything is started."""
    await register_sla_search_attributes(env.client)
    async with sla_worker(env.client, task_queue, activities):
        with env.auto_time_skipping_disabled():
            handles = [
                await env.client.start_workflow(
                    SimulateApplication.run, run, id=f"simulate-{run.workflow_id}", task_queue=task_queue
                )
                for run in runs
            ]
            await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
            try:
                return [await handle.result() for handle in handles]
            finally:
                await env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())


async def simulate(
    simulation: Simulation, database_url: str | None = None, notifier: EscalationNotifier | None = None
) -> list[ApplicationStatus]:
    """A fresh time-skipping server; snapshots go to `database_url` or a scratch SQLite file."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=settings_converter(get_settings(), ephemeral=True),  # random keys unless configured
        runtime=cli_runtime(),
    )
    scratch = tempfile.TemporaryDirectory(prefix="renewals-sla-")
    db = Database(database_url or f"sqlite+aiosqlite:///{scratch.name}/sla.db")
    try:
        await db.migrate()
        return await run_simulation(env, simulation_runs(simulation), SlaActivities(db, notifier))
    finally:
        await db.dispose()
        await env.shutdown()
        scratch.cleanup()


RESULT_KEYS = ("id", "clocks", "escalations", "time_in_status")
CLOCK_KEYS = ("name", "started", "due", "stopped", "breached")
ESCALATION_KEYS = ("at", "clock", "step")


def render_result(status: ApplicationStatus) -> dict[str, Any]:
    """One application of the public output, exactly RESULT_KEYS (the query has the rest); times in
    the calendar's zone, ISO-8601 with offset. Escalations include the warnings (step "warning")."""
    tz = zone(status.calendar.timezone)

    def iso(moment: datetime | None) -> str | None:
        # Whole seconds: the simulated activities take milliseconds of server time.
        return None if moment is None else moment.astimezone(tz).replace(microsecond=0).isoformat()

    return {
        "id": status.id,
        "clocks": [
            {
                "name": clock.name,
                "started": iso(clock.started),
                "due": iso(clock.due),
                "stopped": iso(clock.stopped),
                "breached": clock.breached,
            }
            for clock in status.clocks
        ],
        "escalations": [
            {"at": iso(step.at), "clock": step.clock, "step": step.step.value} for step in status.escalations
        ],
        "time_in_status": status.time_in_status,
    }


async def simulate_results(simulation: Simulation) -> list[dict[str, Any]]:
    """`renewals sla simulate`'s output: the public shape of every application, in input order."""
    return [render_result(status) for status in await simulate(simulation)]

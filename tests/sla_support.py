"""Shared helpers of the SLA tests: a time-skipping environment, a notifier that remembers, and the
recorder of the SLA histories the replay test keeps (`python -m tests.sla_support v2`)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.sla import EscalationNotice
from starter.binaries import find_binary

# A subfolder: tests/test_replay.py replays every tests/histories/*.json as a RenewalJourney.
SLA_HISTORIES = Path(__file__).with_name("histories") / "sla"


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[EscalationNotice] = []

    async def notify(self, notice: EscalationNotice) -> None:
        self.notices.append(notice)


async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    try:
        yield env
    finally:
        await env.shutdown()


def _events(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"at": f"{at}:00+03:00", "status": status} for at, status in pairs]


# Two breaches (the second raises the process flag), a warning, answers by progress; and an urgent
# application whose reaction clock breaches at night.
HISTORY_APPLICATIONS = [
    {
        "id": "hist-repeated",
        "partner": "realty-h",
        "responsible": {"client_contact": "Анна", "payment": "Вера"},
        "events": _events(
            ("2027-04-14T10:00", "submitted"),
            ("2027-04-14T10:40", "calculated"),
            ("2027-04-14T11:00", "paid"),
            ("2027-04-14T14:00", "issued"),
        ),
    },
    {
        "id": "hist-urgent",
        "partner": "realty-h",
        "urgent": True,
        "events": _events(
            ("2027-04-10T03:00", "submitted"),
            ("2027-04-10T03:20", "acknowledged"),
            ("2027-04-12T09:05", "calculated"),
            ("2027-04-12T09:30", "cancelled"),
        ),
    },
]


async def record_sla_histories(version: str) -> None:
    """Run the history applications through the simulator and keep each journey's history."""
    from activities.sla import SlaActivities
    from renewals.db.database import Database
    from starter.sla import parse_simulation, run_simulation, simulation_runs

    SLA_HISTORIES.mkdir(parents=True, exist_ok=True)
    simulation = parse_simulation({"applications": HISTORY_APPLICATIONS}, datetime.now(UTC))
    runs = simulation_runs(simulation)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/sla.db")
        await db.migrate()
        async for env in time_skipping_env():
            await run_simulation(env, runs, SlaActivities(db, RecordingNotifier()))
            for run in runs:
                history = await env.client.get_workflow_handle(run.workflow_id).fetch_history()
                name = run.application.id.replace("hist-", "").replace("-", "_")
                (SLA_HISTORIES / f"{name}_{version}.json").write_text(history.to_json(), encoding="utf-8")
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(record_sla_histories(sys.argv[1] if len(sys.argv) > 1 else "new"))

"""The daily intake's activity: start journeys for due policies, with the worker's client and database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client

from renewals.db.database import Database
from renewals.intake.daily_run import IntakeResult, IntakeRun
from renewals.intake.journey_sync import start_due_journeys
from renewals.sendwindow import SendWindow, zone


class IntakeActivities:
    """Holds its dependencies (Temporal client, database, send window) so tests swap them, not code."""

    def __init__(self, client: Client, db: Database, window: SendWindow) -> None:
        self.client = client
        self.db = db
        self.window = window

    def all(self) -> list[Callable[..., Any]]:
        return [self.start_due_journeys]

    @activity.defn(name="start_due_journeys")
    async def start_due_journeys(self, run: IntakeRun) -> IntakeResult:
        today = run.as_of.astimezone(zone(run.timezone)).date()
        done = 0

        def advance(step: int) -> None:
            nonlocal done
            done += step
            activity.heartbeat(done)

        summary = await start_due_journeys(
            self.client, self.db, today, run.horizon_days, run.task_queue, self.window, advance=advance
        )
        return IntakeResult(today=today.isoformat(), counts=dict(summary.counts), problems=summary.problems)

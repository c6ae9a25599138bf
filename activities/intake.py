"""The daily intake's activity: start journeys for due policies, with the worker's client and database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from renewals.db.database import Database
from renewals.experiments.config import Experiment
from renewals.experiments.registry import ExperimentChanged
from renewals.intake.daily_run import IntakeResult, IntakeRun
from renewals.intake.journey_sync import start_due_journeys
from renewals.intake.start_plan import GateRates, StartPlan
from renewals.sendwindow import SendWindow, zone


class IntakeActivities:
    """Holds its dependencies (Temporal client, database, send window, the experiments and the gate's
    rate source) so tests swap them, not code."""

    def __init__(
        self,
        client: Client,
        db: Database,
        window: SendWindow,
        experiments: Sequence[Experiment] = (),
        gate: GateRates | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.window = window
        self.experiments = tuple(experiments)
        self.gate = gate

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

        try:
            plan = await StartPlan.prepare(self.db, today, self.experiments, self.gate)
        except ExperimentChanged as refused:  # a configuration to fix, not to retry
            raise ApplicationError(str(refused), type="ExperimentChanged", non_retryable=True) from None
        summary = await start_due_journeys(
            self.client,
            self.db,
            today,
            run.horizon_days,
            run.task_queue,
            self.window,
            advance=advance,
            plan=plan,
        )
        return IntakeResult(today=today.isoformat(), counts=dict(summary.counts), problems=summary.problems)

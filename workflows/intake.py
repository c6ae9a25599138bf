"""DailyIntake: the workflow a Temporal Schedule runs every morning — the same intake as `renewals start`.

It is a thin shell around one activity so the Schedule's runs are visible (and retried) in the
Temporal UI; the activity is idempotent, so an overlapping or repeated run starts nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.intake import IntakeActivities
    from renewals.intake.daily_run import IntakeRequest, IntakeResult, IntakeRun
    from renewals.intake.schedule import WORKFLOW_TYPE

INTAKE_TIMEOUT = timedelta(hours=2)
HEARTBEAT = timedelta(minutes=2)


@workflow.defn(name=WORKFLOW_TYPE)
class DailyIntake:
    @workflow.run
    async def run(self, request: IntakeRequest) -> IntakeResult:
        result = await workflow.execute_activity_method(
            IntakeActivities.start_due_journeys,
            IntakeRun(
                horizon_days=request.horizon_days,
                task_queue=request.task_queue,
                timezone=request.timezone,
                as_of=workflow.now(),
            ),
            start_to_close_timeout=INTAKE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=10), maximum_attempts=10),
            summary=f"start journeys for policies ending within {request.horizon_days} days",
        )
        workflow.set_current_details(
            f"**{result.today}** {', '.join(f'{k}: {v}' for k, v in result.counts.items())}"
        )
        return result

"""`renewals schedule install`: a Temporal Schedule that runs DailyIntake every morning.

Installing twice updates the schedule in place; overlapping runs are skipped (the intake is
idempotent anyway, but one run at a time keeps the load predictable).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from renewals.intake.daily_run import IntakeRequest

SCHEDULE_ID = "renewals-daily-intake"
WORKFLOW_TYPE = "DailyIntake"  # workflows/intake.py declares itself by this name


def intake_schedule(
    request: IntakeRequest, hour: int = 7, minute: int = 0, timezone: str = "Europe/Moscow"
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_TYPE,
            request,
            id=SCHEDULE_ID,
            task_queue=request.task_queue,
            static_summary=f"Ежедневный запуск пролонгаций (горизонт {request.horizon_days} дн.)",
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])],
            time_zone_name=timezone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=6)),
    )


async def install_schedule(
    client: Client, request: IntakeRequest, hour: int = 7, minute: int = 0, timezone: str = "Europe/Moscow"
) -> str:
    """Create the schedule, or update it if it exists; returns "created" or "updated"."""
    schedule = intake_schedule(request, hour, minute, timezone)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(SCHEDULE_ID).update(replace)
        return "updated"

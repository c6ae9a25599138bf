"""The daily intake's workflow input and activity contract (pure models, safe inside the sandbox)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntakeRequest(_Contract):
    """What the Schedule asks for every morning: journeys for policies ending within the horizon."""

    horizon_days: int = 60
    task_queue: str = "renewals"
    timezone: str = "Europe/Moscow"  # whose calendar date "today" is


class IntakeRun(_Contract):
    horizon_days: int
    task_queue: str
    timezone: str
    as_of: datetime  # the workflow's clock, so a replay or a time-skipping test means the same day


class IntakeResult(_Contract):
    today: str
    counts: dict[str, int]
    problems: list[str]

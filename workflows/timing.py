"""Sleeping on the workflow's clock until a moment (the simulation drivers' one shared need)."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


async def sleep_until(moment: datetime, summary: str) -> None:
    """A durable timer to `moment`; nothing when it is already past."""
    if moment > workflow.now():
        await workflow.sleep(moment - workflow.now(), summary=summary)

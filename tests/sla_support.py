"""Shared helpers of the SLA tests: a time-skipping environment and a notifier that remembers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.sla import EscalationNotice
from starter.binaries import find_binary


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

"""Journeys started and finished, counted by a workflow interceptor (no change to the workflows).

Runs inside the workflow sandbox, so it imports only temporalio. `workflow.metric_meter()` records
nothing while a workflow replays, so a journey evicted from the cache and replayed on another worker
is not counted twice; a run continued-as-new is not a new journey. The meter labels every count with
the namespace, task queue and `workflow_type` itself.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from temporalio import workflow
from temporalio.exceptions import CancelledError, FailureError
from temporalio.worker import ExecuteWorkflowInput, WorkflowInboundInterceptor

_LABEL = re.compile(r"[a-z][a-z0-9_]{0,31}")


class JourneyCounting(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        meter = workflow.metric_meter()
        info = workflow.info()
        if info.continued_run_id is None:
            meter.create_counter("renewals_journeys_started", "journeys started").add(1)
        finished = meter.create_counter("renewals_journeys_finished", "journeys finished")
        try:
            result = await super().execute_workflow(input)
        except workflow.ContinueAsNewError:
            raise
        except (CancelledError, asyncio.CancelledError):
            finished.add(1, {"outcome": "cancelled"})
            raise
        except FailureError:
            finished.add(1, {"outcome": "failed"})
            raise
        finished.add(1, {"outcome": outcome_of(result)})
        return result


def outcome_of(result: object) -> str:
    """The journey's final stage (`JourneyStatus.stage`, an SLA application's `status`), else
    "completed"; only short lowercase names, so the label stays a closed set."""
    for name in ("stage", "status"):
        value = getattr(result, name, None)
        value = getattr(value, "value", value)
        if isinstance(value, str) and _LABEL.fullmatch(value):
            return value
    return "completed"

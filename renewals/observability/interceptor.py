"""The worker interceptor: counts what the activities did, and gives their log lines the journey's
fields, without touching the activities' code.

Sends are counted once per outbox row that settles, so `renewals_sends_total` equals the outbox
(tests/test_metrics_counts.py proves it against the gateway's log):

* `send` that returns: sent (with the provider that took it) — unless a retry found the row already
  settled (a worker that died after marking it): that one was counted, or is in the outbox already;
* `send` that fails for good having settled its row on this attempt (`SettledSend`: a permanent
  refusal → failed; an opted-out recipient → suppressed): counted with the error class, from the
  error itself. One that fails for good with the row still pending (today's calling hours over) is
  settled, and counted, by the journey's `record_suppressed`;
* `record_suppressed` that settles a row (none, or pending, before it): suppressed or failed, with the
  class of its reason; one that repeats an already settled row (a permanent send failure's audit)
  counts nothing.

A retryable failure is an attempt error (`renewals_send_attempt_errors_total`), not a settled send.
Lateness is from the moment the touchpoint was due (`SendRequest.due_at`: the journey's own moment,
the window's spread included; the activity's scheduled time for a request without it) to the
provider's accept, so it includes a worker pool's lag behind its workflow tasks (the SDK's
`temporal_workflow_task_schedule_to_start_latency_seconds` shows that part alone).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    WorkflowInterceptorClassInput,
)
from temporalio.worker import WorkflowInboundInterceptor as _WorkflowInbound

from renewals.activity_io import OperatorTaskRequest, SendRequest, SuppressionRecord, dedup_key
from renewals.db.database import Database
from renewals.db.tables import OperatorTaskRow, OutboxRow
from renewals.models import Channel
from renewals.observability.journeys import JourneyCounting
from renewals.observability.labels import NONE, bounded, error_class, reason_class
from renewals.observability.logs import log_fields
from renewals.observability.metrics import AppMetrics
from renewals.outbox import SettledSend
from renewals.templates import TEMPLATES

SETTLED = frozenset({"sent", "failed", "suppressed"})
UNKNOWN = "unknown"  # the database did not answer the look-up
log = logging.getLogger(__name__)
ProviderOf = Callable[[Channel], str]
SLA_CLOCKS = ("calculation", "issuance", "urgent_reaction")


class ObservingInterceptor(Interceptor):
    """`db` is the application database the activities write (the outbox, operator tasks): read only
    on a retry and by `record_suppressed`, never on a send's first attempt. `provider_of(channel)` names the
    provider configured for a channel (the label of a failed send, which no provider took)."""

    def __init__(self, metrics: AppMetrics, db: Database, provider_of: ProviderOf) -> None:
        self.metrics = metrics
        self.db = db
        self.provider_of = provider_of

    async def outbox_status(self, key: str) -> str | None:
        """The row's status; "unknown" if the database does not answer — counting must never change
        what the activity raises, so a failed look-up only costs the count."""
        try:
            async with self.db.engine.connect() as connection:
                found = await connection.execute(select(OutboxRow.status).where(OutboxRow.dedup_key == key))
                return found.scalar_one_or_none()
        except Exception as error:
            log.warning("outbox status of %s not read for the metrics: %s", key, type(error).__name__)
            return UNKNOWN

    async def operator_task_exists(self, key: str) -> bool:
        try:
            async with self.db.engine.connect() as connection:
                found = await connection.execute(
                    select(OperatorTaskRow.id).where(OperatorTaskRow.dedup_key == key)
                )
                return found.scalar_one_or_none() is not None
        except Exception as error:
            log.warning("operator task %s not read for the metrics: %s", key, type(error).__name__)
            return True  # unknown: not counted rather than counted twice

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ObservedActivity(next, self)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[_WorkflowInbound] | None:
        return JourneyCounting


class _ObservedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, owner: ObservingInterceptor) -> None:
        super().__init__(next)
        self.owner = owner
        self.metrics = owner.metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        argument = input.args[0] if input.args else None
        with _logged(argument):
            kind = activity.info().activity_type
            if kind == "send" and isinstance(argument, SendRequest):
                return await self._send(input, argument)
            if kind == "record_suppressed" and isinstance(argument, SuppressionRecord):
                return await self._record_suppressed(input, argument)
            if kind == "open_operator_task" and isinstance(argument, OperatorTaskRequest):
                return await self._open_operator_task(input, argument)
            result = await self.next.execute_activity(input)
            if kind in ("sla_warn", "sla_check_data_and_payment"):
                clock = bounded(getattr(argument, "clock", None), SLA_CLOCKS)
                counter = self.metrics.sla_warnings if kind == "sla_warn" else self.metrics.sla_breaches
                counter.add(1, {"clock": clock})
            return result

    async def _send(self, input: ExecuteActivityInput, request: SendRequest) -> Any:
        info = activity.info()
        channel = request.channel.value
        if info.attempt > 1 and await self.owner.outbox_status(request.dedup_key) in SETTLED:
            return await self.next.execute_activity(input)  # settled (and counted) before
        self.metrics.adjust_in_flight(channel, 1)
        try:
            receipt = await self.next.execute_activity(input)
        except SettledSend as settled:  # this attempt settled the row for good: counted from the error
            status = settled.status
            provider = self.owner.provider_of(request.channel) if status == "failed" else NONE
            self._settled(request.channel, request.template, status, provider, error_class(settled.type))
            raise
        except ApplicationError as error:
            if not error.non_retryable:
                self._attempt_error(channel, error.type)
            raise
        except Exception as error:  # an unexpected error: the activity retries it
            self._attempt_error(channel, type(error).__name__)
            raise
        finally:
            self.metrics.adjust_in_flight(channel, -1)
        provider = getattr(receipt, "provider", None) or NONE
        self._settled(request.channel, request.template, "sent", provider, NONE)
        late = (datetime.now(UTC) - (request.due_at or info.scheduled_time)).total_seconds()
        self.metrics.send_lateness.record(max(late, 0.0), {"channel": channel})
        return receipt

    async def _record_suppressed(self, input: ExecuteActivityInput, record: SuppressionRecord) -> Any:
        before = await self.owner.outbox_status(
            dedup_key(record.journey_id, record.touchpoint, record.channel)
        )
        result = await self.next.execute_activity(input)
        if before in (None, "pending"):  # it settled the row (unknown: not counted)
            self._settled(record.channel, record.template, record.status, NONE, reason_class(record.reason))
        return result

    async def _open_operator_task(self, input: ExecuteActivityInput, request: OperatorTaskRequest) -> Any:
        existed = activity.info().attempt > 1 and await self.owner.operator_task_exists(request.dedup_key)
        result = await self.next.execute_activity(input)
        if not existed:
            self.metrics.operator_tasks_opened.add(1, {"centre": error_class(request.centre_id)})
        return result

    def _settled(self, channel: Channel, template: str, result: str, provider: str, error: str) -> None:
        self.metrics.sends.add(
            1,
            {
                "channel": channel.value,
                "provider": _provider_label(provider),
                "template": bounded(template, TEMPLATES),
                "result": bounded(result, SETTLED),
                "error_class": error,
            },
        )

    def _attempt_error(self, channel: str, kind: str | None) -> None:
        self.metrics.send_attempt_errors.add(1, {"channel": channel, "error_class": error_class(kind)})


def _provider_label(name: str) -> str:
    """Provider names come from our configuration (smsc, smsc-backup, sms-failover, vk, …)."""
    cleaned = name.replace("-", "_")
    return name if error_class(cleaned) == cleaned else "other"


@contextlib.contextmanager
def _logged(argument: object) -> Iterator[None]:
    """Every log line of this activity carries the journey id, touchpoint and dedup key, and has the
    request's own personal values masked wherever they appear (logs.py)."""
    info = activity.info()
    fields: dict[str, Any] = {"journey_id": info.workflow_id, "activity": info.activity_type}
    for name in ("touchpoint", "dedup_key"):
        value = getattr(argument, name, None)
        if isinstance(value, str):
            fields[name] = value
    channel = getattr(argument, "channel", None)
    if isinstance(channel, Channel):
        fields["channel"] = channel.value
    secrets = tuple(
        value
        for name in ("recipient", "text", "subject")
        if isinstance(value := getattr(argument, name, None), str)
    )
    token = log_fields.set((fields, secrets))
    try:
        yield
    finally:
        log_fields.reset(token)

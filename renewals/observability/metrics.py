"""The worker's own metrics (`renewals_*`), made on the Temporal SDK runtime's meter so they are served
beside the SDK's `temporal_*` on the one Prometheus address (`runtime.py`).

Names follow Prometheus conventions once the exporter applies them (`runtime.worker_runtime` turns on
the `_total` suffix for counters and the unit suffix): a counter declared `renewals_sends` is scraped
as `renewals_sends_total`, a histogram with unit "seconds" as `…_seconds`. `CATALOGUE` lists every
metric as Prometheus shows it, with its labels: the docs, the dashboards and the alert rules are
checked against it (tests/test_metrics_rules.py), so none of them can name a metric nobody exports.

Labels are closed sets (`labels.py`): channel, provider, template, result, error class, stage,
centre, clock. Never a policy number, a journey id or an address.

Where a number comes from, and why there:

* sends, lateness, in-flight sends — the `send` and `record_suppressed` activities, seen by the
  worker interceptor (`interceptor.py`): one count per outbox row that reaches sent, suppressed or
  failed, so the counter equals the outbox;
* provider call latency and pauses — the providers themselves, wrapped (`providers.py`);
* journeys started and finished — a workflow interceptor (`journeys.py`), replay-safe;
* outbox backlog, channel pauses in force, journeys by stage, operator tasks and their age — read
  from the application database (running journeys' stages from Temporal's visibility) every
  `metrics_poll_seconds` (`gauges.py`). These are the same in every worker: aggregate them with
  `max`, not `sum`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from threading import Lock

from temporalio.common import MetricMeter

# Histogram buckets (seconds). Lateness: a send goes out within seconds of its moment unless a rate
# limit, a retry, a pause or the send window holds it — then minutes to a day.
LATENESS_BUCKETS = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0]
PROVIDER_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
BUCKETS = {
    "renewals_send_lateness": LATENESS_BUCKETS,
    "renewals_provider_request_duration": PROVIDER_BUCKETS,
}


@dataclass(frozen=True)
class MetricInfo:
    name: str  # as Prometheus shows it
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    source: str  # "worker" or "webhooks"


CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo(
        "renewals_sends_total",
        "counter",
        ("channel", "provider", "template", "result", "error_class"),
        "Touchpoints settled in the outbox: result sent, suppressed or failed, with the error class",
        "worker",
    ),
    MetricInfo(
        "renewals_send_attempt_errors_total",
        "counter",
        ("channel", "error_class"),
        "Send attempts that failed and will be retried (transient errors, pauses, the send window)",
        "worker",
    ),
    MetricInfo(
        "renewals_send_lateness_seconds",
        "histogram",
        ("channel",),
        "From the moment the journey handed the send over (its due moment) to the provider's accept",
        "worker",
    ),
    MetricInfo(
        "renewals_sends_in_flight",
        "gauge",
        ("channel",),
        "Send activities running in this worker now (claim, provider call, mark)",
        "worker",
    ),
    MetricInfo(
        "renewals_provider_request_duration_seconds",
        "histogram",
        ("channel", "provider", "operation", "outcome"),
        "One call to a provider (deliver, or find when reconciling), by outcome ok or error",
        "worker",
    ),
    MetricInfo(
        "renewals_channel_pauses_total",
        "counter",
        ("channel", "provider", "error_class"),
        "Times a provider refused our account (no funds, bad credentials) and paused its channel",
        "worker",
    ),
    MetricInfo(
        "renewals_channel_paused",
        "gauge",
        ("channel",),
        "1 while a channel is paused (read from the database: every worker honours it)",
        "worker",
    ),
    MetricInfo(
        "renewals_outbox_pending_rows",
        "gauge",
        ("channel",),
        "Outbox rows claimed and not yet settled: sends in flight or waiting for a retry",
        "worker",
    ),
    MetricInfo(
        "renewals_outbox_oldest_pending_age_seconds",
        "gauge",
        ("channel",),
        "Age of the oldest unsettled outbox row (0: none)",
        "worker",
    ),
    MetricInfo(
        "renewals_journeys",
        "gauge",
        ("stage",),
        "Renewal journeys by stage: running ones by JourneyStage (Temporal visibility), finished ones "
        "by outcome (the journeys table)",
        "worker",
    ),
    MetricInfo(
        "renewals_journeys_started_total",
        "counter",
        ("workflow_type",),
        "Journeys (workflow executions, not continued runs) that started on this worker",
        "worker",
    ),
    MetricInfo(
        "renewals_journeys_finished_total",
        "counter",
        ("workflow_type", "outcome"),
        "Journeys that finished on this worker, by outcome (the final stage, failed, cancelled)",
        "worker",
    ),
    MetricInfo(
        "renewals_operator_tasks_opened_total",
        "counter",
        ("centre",),
        "Operator tasks a journey opened (idempotent: a repeated open is not counted)",
        "worker",
    ),
    MetricInfo(
        "renewals_operator_tasks",
        "gauge",
        ("status",),
        "Operator tasks in the database by status (open, claimed, closed)",
        "worker",
    ),
    MetricInfo(
        "renewals_operator_task_oldest_open_age_seconds",
        "gauge",
        (),
        "Age of the oldest operator task not yet closed (0: none)",
        "worker",
    ),
    MetricInfo(
        "renewals_sla_warnings_total",
        "counter",
        ("clock",),
        "Partner SLA warnings sent before a breach, by clock",
        "worker",
    ),
    MetricInfo(
        "renewals_sla_breaches_total",
        "counter",
        ("clock",),
        "Partner SLA breaches (the escalation checklist started), by clock",
        "worker",
    ),
    MetricInfo(
        "renewals_send_window_spread_seconds",
        "gauge",
        (),
        "The configured spread of each morning's sends over the window (the lateness alert's margin)",
        "worker",
    ),
    MetricInfo(
        "renewals_webhook_callbacks_total",
        "counter",
        ("source", "result"),
        "Callbacks by source and result: accepted, duplicate, refused, unknown_journey, busy, error",
        "webhooks",
    ),
    MetricInfo(
        "renewals_webhook_request_duration_seconds",
        "histogram",
        ("source",),
        "Time to answer one callback",
        "webhooks",
    ),
)
BY_NAME = {info.name: info for info in CATALOGUE}


class AppMetrics:
    """Every instrument of the worker, made once on `meter` (the runtime's: its Prometheus endpoint).

    Gauges are set, not added: `adjust_in_flight` keeps the count per channel itself."""

    def __init__(self, meter: MetricMeter) -> None:
        self.sends = meter.create_counter("renewals_sends", BY_NAME["renewals_sends_total"].help)
        self.send_attempt_errors = meter.create_counter(
            "renewals_send_attempt_errors", BY_NAME["renewals_send_attempt_errors_total"].help
        )
        self.send_lateness = meter.create_histogram_float(
            "renewals_send_lateness", BY_NAME["renewals_send_lateness_seconds"].help, "seconds"
        )
        self._in_flight_gauge = meter.create_gauge(
            "renewals_sends_in_flight", BY_NAME["renewals_sends_in_flight"].help
        )
        self.provider_duration = meter.create_histogram_timedelta(
            "renewals_provider_request_duration",
            BY_NAME["renewals_provider_request_duration_seconds"].help,
            "duration",
        )
        self.channel_pauses = meter.create_counter(
            "renewals_channel_pauses", BY_NAME["renewals_channel_pauses_total"].help
        )
        self.channel_paused = meter.create_gauge(
            "renewals_channel_paused", BY_NAME["renewals_channel_paused"].help
        )
        self.outbox_pending = meter.create_gauge(
            "renewals_outbox_pending_rows", BY_NAME["renewals_outbox_pending_rows"].help
        )
        self.outbox_oldest = meter.create_gauge_float(
            "renewals_outbox_oldest_pending_age_seconds",
            BY_NAME["renewals_outbox_oldest_pending_age_seconds"].help,
            "seconds",
        )
        self.journeys = meter.create_gauge("renewals_journeys", BY_NAME["renewals_journeys"].help)
        self.operator_tasks_opened = meter.create_counter(
            "renewals_operator_tasks_opened", BY_NAME["renewals_operator_tasks_opened_total"].help
        )
        self.operator_tasks = meter.create_gauge(
            "renewals_operator_tasks", BY_NAME["renewals_operator_tasks"].help
        )
        self.operator_oldest = meter.create_gauge_float(
            "renewals_operator_task_oldest_open_age_seconds",
            BY_NAME["renewals_operator_task_oldest_open_age_seconds"].help,
            "seconds",
        )
        self.sla_warnings = meter.create_counter(
            "renewals_sla_warnings", BY_NAME["renewals_sla_warnings_total"].help
        )
        self.sla_breaches = meter.create_counter(
            "renewals_sla_breaches", BY_NAME["renewals_sla_breaches_total"].help
        )
        self.window_spread = meter.create_gauge_float(
            "renewals_send_window_spread_seconds", BY_NAME["renewals_send_window_spread_seconds"].help
        )
        self._in_flight: dict[str, int] = {}
        self._lock = Lock()

    def adjust_in_flight(self, channel: str, delta: int) -> None:
        with self._lock:
            value = self._in_flight.get(channel, 0) + delta
            self._in_flight[channel] = value
        self._in_flight_gauge.set(value, {"channel": channel})

    def observe_provider(
        self, channel: str, provider: str, operation: str, outcome: str, took: timedelta
    ) -> None:
        self.provider_duration.record(
            took, {"channel": channel, "provider": provider, "operation": operation, "outcome": outcome}
        )

"""The worker's Temporal SDK runtime: its Prometheus exporter serves the SDK's `temporal_*` metrics and
ours (`renewals_*`, made on `runtime.metric_meter`) on one address, `RENEWALS_METRICS_ADDRESS`.

The exporter is configured for Prometheus conventions: counters get `_total`, metrics their unit
(`_seconds`), durations are float seconds (not the SDK's default integer milliseconds). Core's logs go
to Python logging, so they come out as the same structured lines as ours (`logs.py`).
"""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from renewals.observability.metrics import BUCKETS


def metrics_runtime(bind_address: str | None) -> Runtime:
    """A runtime exporting to Prometheus on `bind_address` ("host:port"; None or "": no endpoint —
    the meter still works, nothing serves it). Binding fails at once if the port is taken."""
    metrics = (
        PrometheusConfig(
            bind_address=bind_address,
            counters_total_suffix=True,
            unit_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides=BUCKETS,
        )
        if bind_address
        else None
    )
    try:
        return _runtime(metrics)
    except ValueError as error:  # the Core exporter could not bind
        raise RuntimeError(
            f"cannot serve metrics on {bind_address} ({error}): another process has the port; "
            'set RENEWALS_METRICS_ADDRESS to a free host:port, or to "" for no metrics endpoint'
        ) from None


def _runtime(metrics: PrometheusConfig | None) -> Runtime:
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=metrics,
            attach_service_name=False,
        )
    )


def install_metrics_runtime(bind_address: str | None) -> Runtime:
    """Make the Prometheus runtime the process's default, so every client this process connects
    (`renewals.temporal.connection.connect`) and its workers export through it. Call it before the
    first client is made."""
    runtime = metrics_runtime(bind_address)
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


def metrics_url(bind_address: str) -> str:
    host, _, port = bind_address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/metrics"

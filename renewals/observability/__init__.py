"""Observability (issue 15): Prometheus metrics, health endpoints, structured logs, the status page.

The worker's metrics come from the Temporal SDK runtime's Prometheus exporter (`runtime.py`): the SDK's
own `temporal_*` and ours (`renewals_*`, `metrics.py`) on one address. The webhook service serves its
own on `/metrics` (`webhooks.py`, prometheus_client). docs/observability.md has the catalogue, the alert
rules (deploy/prometheus/), the dashboards and the production layout.
"""

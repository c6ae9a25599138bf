"""Retry policies and timeouts the workflows give their activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# A send: patient, since a provider outage or a paused channel may last; ends with the send's deadline.
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10))
# Bookkeeping in our own database: quick, it is expected back at once.
QUICK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ACTIVITY_TIMEOUT = timedelta(seconds=30)  # one attempt, start to close

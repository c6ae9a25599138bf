"""The Temporal SDK runtime for command-line tools: Core's logs go to Python logging (stderr), never
to stdout, where `renewals simulate` prints its JSON."""

from __future__ import annotations

import logging
from functools import cache

from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter


@cache
def cli_runtime() -> Runtime:
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )

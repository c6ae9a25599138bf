"""How a worker or a command reaches Temporal: the dev server, a self-hosted cluster or Temporal Cloud.

Sources, later ones winning: Temporal's own environment configuration (`temporalio.envconfig`: the
`TEMPORAL_*` variables and the `temporal.toml` profile the `temporal` CLI uses), then the service's
settings (`RENEWALS_TEMPORAL_*`) that were set explicitly. TLS: an API key implies TLS (Temporal
Cloud); client certificate and key files give mTLS (self-hosted or Cloud with certificates).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    RPCTimeoutOrCancelledError,
    StartWorkflowUpdateInput,
)
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from renewals.encryption.converter import settings_converter
from renewals.settings import Settings


async def connect(settings: Settings, call_timeout: float | None = None) -> Client:
    """A client for the configured Temporal: pydantic models as JSON, encrypted (renewals/encryption).

    With `call_timeout` (seconds; the CLI's), connecting and every call on the client give up after
    that long with a `TemporalTimeout` saying what they were waiting for (renewals/temporal/timeouts.py)."""
    options = connect_options(settings)
    converter = settings_converter(settings, address=options["target_host"])
    if call_timeout is None:
        return await Client.connect(**options, data_converter=converter)
    address, namespace = options["target_host"], options["namespace"]
    try:
        async with asyncio.timeout(call_timeout):
            return await Client.connect(
                **options,
                data_converter=converter,
                interceptors=[CallTimeouts(call_timeout, settings.task_queue)],
            )
    except TimeoutError:
        raise TemporalTimeout(
            f"waiting for Temporal at {address} (namespace {namespace}): is the server running?",
            call_timeout,
        ) from None


def connect_options(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `Client.connect` (without the data converter)."""
    options: dict[str, Any] = dict(
        ClientConfig.load_client_connect_config(
            profile=settings.temporal_profile,
            config_file=str(settings.temporal_config_file) if settings.temporal_config_file else None,
            override_env_vars=env,
        )
    )
    explicit = settings.model_fields_set
    if "temporal_address" in explicit or "target_host" not in options:
        options["target_host"] = settings.temporal_address
    if "temporal_namespace" in explicit or "namespace" not in options:
        options["namespace"] = settings.temporal_namespace
    if settings.temporal_api_key is not None:
        options["api_key"] = settings.temporal_api_key.get_secret_value()
        options["tls"] = True
    if settings.temporal_tls_cert is not None or settings.temporal_tls_ca is not None:
        options["tls"] = TLSConfig(
            client_cert=_read(settings.temporal_tls_cert),
            client_private_key=_read(settings.temporal_tls_key),
            server_root_ca_cert=_read(settings.temporal_tls_ca),
            domain=settings.temporal_tls_server_name,
        )
    elif settings.temporal_tls:
        options["tls"] = True
    return options


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


class TemporalTimeout(Exception):
    """A Temporal call gave up after the client's call timeout; the message says what it waited for."""

    def __init__(self, waiting_for: str, seconds: float) -> None:
        super().__init__(f"gave up after {seconds:g}s {waiting_for}")


class CallTimeouts(Interceptor):
    """Every call on the client gets `seconds` as its RPC timeout and, around it, the same deadline
    (an update's start is a loop of long polls that a per-RPC timeout alone does not end).

    A query or an update is answered by a worker: waiting for one names the task queue."""

    def __init__(self, seconds: float, task_queue: str) -> None:
        self.seconds, self.task_queue = seconds, task_queue

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _TimedCalls(next, self.seconds, self.task_queue)


_WORKER_CALLS = ("query_workflow", "start_workflow_update", "start_update_with_start_workflow")
_ASYNC_CALLS = (
    *_WORKER_CALLS,
    "start_workflow",
    "cancel_workflow",
    "describe_workflow",
    "count_workflows",
    "signal_workflow",
    "terminate_workflow",
    "create_schedule",
    "describe_schedule",
    "update_schedule",
    "delete_schedule",
    "pause_schedule",
    "unpause_schedule",
    "trigger_schedule",
    "backfill_schedule",
)
_ITERATING_CALLS = ("list_workflows", "list_schedules", "fetch_workflow_history_events")


class _TimedCalls(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, seconds: float, task_queue: str) -> None:
        super().__init__(next)
        self._seconds, self._task_queue = seconds, task_queue
        for name in _ASYNC_CALLS:
            setattr(self, name, self._timed(name, getattr(next, name)))
        for name in _ITERATING_CALLS:
            setattr(self, name, self._with_rpc_timeout(getattr(next, name)))

    def _with_rpc_timeout(self, call: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def timed(input: Any) -> Any:
            if getattr(input, "rpc_timeout", None) is None:
                input.rpc_timeout = timedelta(seconds=self._seconds)
            return call(input)

        return timed

    def _timed(self, name: str, call: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        rpc = self._with_rpc_timeout(call)

        async def timed(input: Any) -> Any:
            try:
                async with asyncio.timeout(self._seconds):
                    return await rpc(input)
            except (TimeoutError, RPCTimeoutOrCancelledError) as error:
                raise TemporalTimeout(self._waiting_for(name, input), self._seconds) from error
            except RPCError as error:
                if error.status is not RPCStatusCode.DEADLINE_EXCEEDED:
                    raise
                raise TemporalTimeout(self._waiting_for(name, input), self._seconds) from error

        return timed

    def _waiting_for(self, name: str, input: Any) -> str:
        workflow = getattr(input, "id", None) or getattr(input, "workflow_id", None) or ""
        what = name.replace("_", " ")
        if isinstance(input, StartWorkflowUpdateInput):
            what = f"update {input.update}"
        elif name == "query_workflow":
            what = f"query {getattr(input, 'query', '')}"
        target = f" of workflow {workflow}" if workflow else ""
        if name in _WORKER_CALLS:
            return (
                f"waiting for a worker on task queue {self._task_queue} to answer {what}{target}: "
                "is `renewals worker` running?"
            )
        return f"waiting for Temporal to answer {what}{target}: is the server reachable?"

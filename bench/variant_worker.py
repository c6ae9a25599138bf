"""`python -m bench.variant_worker VARIANT[,VARIANT…]`: the production worker (`worker.py`) with
experimental changes patched in at start, so the bench can measure a recommendation before anyone
edits the real files. Nothing here is used in production.

Variants:
- `pool1`: one SQLite connection (pool_size=1, max_overflow=0): activities queue for the connection
  in Python instead of spinning in SQLite's busy handler for the write lock.
- `deferred`: plain (deferred) BEGIN instead of BEGIN IMMEDIATE, so read-only sessions (opt-out
  check, pause check, ledger) do not take the write lock.
- `slotsN` (e.g. `slots20`): at most N concurrent activities per channel worker (default 100).
- `nocheck`: the SMSC adapter sends without its `/sys/status.php` pre-check (one HTTP call less per SMS).
- `quiet`: logging at WARNING (no INFO line per send).
- `cacheN` (e.g. `cache200`): the journey worker keeps at most N workflows in its sticky cache.
- `wfpollsN` (e.g. `wfpolls5`, the SDK's default): at most N concurrent workflow-task polls on the
  journey worker instead of `worker.WORKFLOW_TASK_POLLS` (`nonsticky_to_sticky_poll_ratio` 0.2 gives
  a fifth of them to the normal queue, where new journeys' first tasks wait).
- `ratioX` (e.g. `ratio1`): the journey worker's `nonsticky_to_sticky_poll_ratio`.
- `wfautoscale`: the journey worker's workflow-task pollers autoscale (`PollerBehaviorAutoscaling`).
- `passthrough`: the workflows package passed through the sandbox (imported once, not per run).
- `unsandboxed`: the journey worker runs workflows without the sandbox (as `renewals simulate` does).
- `nocodec`: the worker's client uses the plain pydantic converter (`data_converter(None)`): payloads go
  to Temporal unencrypted. Only for measuring the codec's cost (`python -m bench --codec N`); the bench
  client that starts the journeys must then be unencrypted too (`bench.infra.pydantic_client`).
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

import worker as production
from renewals.db import database


def apply(variants: list[str]) -> None:
    worker_kwargs: dict[str, Any] = {}
    journey_kwargs: dict[str, Any] = {}
    for variant in variants:
        if variant == "pool1":
            original = vars(database)["create_async_engine"]  # patched by name: not re-exported

            def one_connection(url: str, original: Any = original, **kwargs: Any) -> Any:
                if url.startswith("sqlite"):
                    kwargs.update(pool_size=1, max_overflow=0, pool_timeout=120)
                return original(url, **kwargs)

            setattr(database, "create_async_engine", one_connection)  # noqa: B010
        elif variant == "deferred":
            # Database() registers the module's function when it is built: replace it before that.
            def begin_deferred(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN")

            setattr(database, "_begin_immediate", begin_deferred)  # noqa: B010
        elif variant.startswith("slots"):
            worker_kwargs["max_concurrent_activities"] = int(variant[5:])
        elif variant.startswith("cache"):
            journey_kwargs["max_cached_workflows"] = int(variant[5:])
        elif variant.startswith("wfpolls"):
            from temporalio.worker import PollerBehaviorSimpleMaximum

            journey_kwargs["workflow_task_poller_behavior"] = PollerBehaviorSimpleMaximum(int(variant[7:]))
        elif variant.startswith("ratio"):
            journey_kwargs["nonsticky_to_sticky_poll_ratio"] = float(variant[5:])
        elif variant == "wfautoscale":
            from temporalio.worker import PollerBehaviorAutoscaling

            journey_kwargs["workflow_task_poller_behavior"] = PollerBehaviorAutoscaling()
        elif variant == "passthrough":
            from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

            from workflows.runner import SANDBOXED_RUNNER

            journey_kwargs["workflow_runner"] = SandboxedWorkflowRunner(
                restrictions=SANDBOXED_RUNNER.restrictions.with_passthrough_modules("workflows")
            )
        elif variant == "unsandboxed":
            from temporalio.worker import UnsandboxedWorkflowRunner

            journey_kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
        elif variant == "nocheck":
            from renewals.channels import smsc

            original_init = smsc.SmscProvider.__init__

            def no_check(
                self: Any, config: Any, *args: Any, original_init: Any = original_init, **kwargs: Any
            ) -> None:
                original_init(self, config.model_copy(update={"check_before_send": False}), *args, **kwargs)

            smsc.SmscProvider.__init__ = no_check  # type: ignore[method-assign]
        elif variant == "quiet":
            logging.getLogger("activities").setLevel(logging.WARNING)
        elif variant == "nocodec":
            setattr(production, "connect", _connect_without_codec)  # noqa: B010 (worker.py imported it by name)
        else:
            raise SystemExit(f"unknown variant {variant!r}")
    if worker_kwargs or journey_kwargs:
        real = vars(production)["Worker"]  # worker.py's own name for temporalio's Worker

        def patched(client: Any, task_queue: str, **kwargs: Any) -> Any:
            channel_queue = kwargs.get("workflows") is None
            extra = worker_kwargs if channel_queue else journey_kwargs
            return real(client, task_queue=task_queue, **(kwargs | extra))

        setattr(production, "Worker", functools.wraps(real)(patched))  # noqa: B010


async def _connect_without_codec(settings: Any) -> Any:
    """`renewals.temporal.connection.connect` without the payload codec (same address, TLS, namespace)."""
    from temporalio.client import Client

    from renewals.encryption import data_converter
    from renewals.temporal.connection import connect_options

    return await Client.connect(**connect_options(settings), data_converter=data_converter(None))


def main() -> None:
    variants = [v for v in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if v]
    apply(variants)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if "quiet" in variants:
        logging.getLogger("activities").setLevel(logging.WARNING)
    logging.getLogger("bench").info("variants: %s", variants or "none")
    import asyncio

    asyncio.run(production.run_worker())


if __name__ == "__main__":
    main()

"""The bare-Temporal baseline: a workflow that sleeps until one shared instant, then runs as many
no-op activities as our −30 renewal-centre touchpoint sends (e-mail, VK, SMS: 3), one after another
like the journey does. Run its worker with `python -m bench.bare --address A --queue Q`.

The module is imported by the workflow sandbox: only temporalio here, no I/O at import.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from temporalio import activity, workflow

SENDS = 3


@activity.defn(name="bare_noop")
async def bare_noop(index: int) -> int:
    return index


@workflow.defn(name="BareBurst")
class BareBurst:
    @workflow.run
    async def run(self, wake_at_epoch: float, sends: int = SENDS, parallel: bool = False) -> None:
        delay = wake_at_epoch - workflow.now().timestamp()
        if delay > 0:
            await workflow.sleep(delay)
        timeout = timedelta(seconds=30)
        if parallel:  # like the journey since "same-day touchpoints go out together"
            await asyncio.gather(
                *(
                    workflow.execute_activity(bare_noop, i, start_to_close_timeout=timeout)
                    for i in range(sends)
                )
            )
            return
        for index in range(sends):
            await workflow.execute_activity(bare_noop, index, start_to_close_timeout=timeout)


async def _serve(address: str, queue: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    worker = Worker(client, task_queue=queue, workflows=[BareBurst], activities=[bare_noop])
    print("bare worker ready", flush=True)
    await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--address", required=True)
    parser.add_argument("--queue", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.address, args.queue))


if __name__ == "__main__":
    main()

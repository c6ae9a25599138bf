"""`python -m bench.restart_check DB_FILE WORKER_ENV OUT`: the journeys a stopped `--full` run left, on a
dev server and a worker both started afresh on its file (how the 2026-12-03 restart figure was taken).

WORKER_ENV: the stopped worker's RENEWALS_* lines (`/proc/<pid>/environ`, its keys included). Journeys
started without their first workflow task are given up to 15 minutes to fall asleep, then every one is
checked (bench.phases.memory.survivors)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from bench.infra import dev_server, process, wait_for_text
from bench.phases.memory import survivors
from renewals.encryption.keys import Keyring


async def main() -> None:
    db, env_file, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    keyring = Keyring.parse(json.loads(env["RENEWALS_ENCRYPTION_KEYS"]))
    t0 = time.monotonic()
    async with dev_server("sqlite", db.parent, db_file=db, keyring=keyring) as server:
        up = time.monotonic() - t0
        wenv = {
            **os.environ,
            **env,
            "RENEWALS_TEMPORAL_ADDRESS": server.address,
            "RENEWALS_METRICS_ADDRESS": "",
            "RENEWALS_WORKER_HEALTH_ADDRESS": "",
        }
        log = db.parent / "restart-worker.log"
        with process([sys.executable, "worker.py"], log, wenv) as worker:
            await wait_for_text(log, "worker serving", worker, 300)
            q = f"TaskQueue = '{env['RENEWALS_TASK_QUEUE']}'"
            running = (await server.client.count_workflows(f"{q} AND ExecutionStatus = 'Running'")).count
            asleep0 = (await server.client.count_workflows(f"{q} AND JourneyStage = 'scheduled'")).count
            print("running", running, "asleep at once", asleep0, flush=True)
            w0 = time.monotonic()
            while (
                await server.client.count_workflows(f"{q} AND JourneyStage = 'scheduled'")
            ).count < running:
                if time.monotonic() - w0 > 900:
                    break
                await asyncio.sleep(5)
            caught_up = time.monotonic() - w0
            result = await survivors(server.client, env["RENEWALS_TASK_QUEUE"], running)
            result |= {"asleep_at_once": asleep0, "rest_asleep_after_s": round(caught_up, 1)}
    result |= {"server_up_after_s": round(up, 1), "db_file_mib": round(db.stat().st_size / 2**20, 1)}
    print(json.dumps(result, indent=2))
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

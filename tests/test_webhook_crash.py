"""The webhook service dies between claiming a callback and signalling the journey (or between the
signal and marking the claim done): the process is killed (`os._exit`), the provider retries, and the
journey still receives the event exactly once.

The service runs as a subprocess (`python -m tests.test_webhook_crash <temporal> <db> <point> <port>`)
on the test's dev server and database, with the kill wired in at `point`; the provider's retries then
go to a fresh service in this process, as after a restart."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from renewals.webhooks import service as webhook_service
from renewals.webhooks.app import create_app
from tests.test_webhooks import SECRETS, Stack, stack  # noqa: F401  (the dev server + worker fixture)

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _post_to_dying_service(
    stack: Stack,  # noqa: F811
    point: str,
    payload: dict[str, Any],
) -> int:
    """Start the service with the kill at `point`, post the callback, return the exit code."""
    target = stack.client.service_client.config.target_host
    port = _free_port()
    args = [
        sys.executable,
        "-m",
        "tests.test_webhook_crash",
        target,
        str(stack.db.engine.url),
        point,
        str(port),
    ]
    process = subprocess.Popen(args, cwd=ROOT, env=os.environ.copy())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            for _ in range(200):  # until it listens
                try:
                    await http.get("/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            with pytest.raises(httpx.TransportError):  # the connection dies with the process
                await stack.post("email", payload, http=http)
        return process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("point", ["before_signal", "after_signal"])
async def test_a_callback_survives_the_service_dying_between_claim_and_done(
    stack: Stack,  # noqa: F811
    point: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, workflow_id = await stack.journey(f"WH-CRASH-{point}")
    payload = {"event_id": f"crash-{point}", "policy_number": p.number, "type": "opened"}
    assert await _post_to_dying_service(stack, point, payload) == 9
    assert await stack.stored("email", payload["event_id"]) == 1  # claimed, never done
    opened_before = [t for t, _ in await stack.events(workflow_id)].count("email_opened")
    assert opened_before == (1 if point == "after_signal" else 0)

    monkeypatch.setattr(webhook_service, "CLAIM_LEASE", timedelta(seconds=1))
    monkeypatch.setattr(webhook_service, "CLAIM_WAIT", timedelta(seconds=0.1), raising=False)
    app = create_app(stack.db, stack.client, SECRETS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks") as http:
        # within the dead holder's lease: not "duplicate" (that would lose it) but a 503 to retry
        early = await stack.post("email", payload, http=http)
        assert early.status_code == 503 and early.headers["retry-after"]
        await asyncio.sleep(1.1)
        retried = await stack.post("email", payload, http=http)
        assert retried.status_code == 200, retried.text
        assert retried.json() == {"status": "accepted", "journey_id": workflow_id, "signal": "event"}
        again = await stack.post("email", payload, http=http)
        assert again.json()["status"] == "duplicate"
    assert [t for t, _ in await stack.events(workflow_id)].count("email_opened") == 1
    assert await stack.stored("email", payload["event_id"]) == 1


def _serve(target: str, db_url: str, point: str, port: int) -> None:
    """The webhook service, killed (no cleanup, no `finally`) at `point` of the first callback."""
    import uvicorn
    from temporalio.client import Client

    from renewals.db.database import Database
    from tests.keys import TEST_CONVERTER

    def die(*_: Any, **__: Any) -> Any:
        os._exit(9)

    if point == "before_signal":
        webhook_service.Action.send = die  # type: ignore[method-assign]
    else:
        webhook_service.WebhookService._done = die  # type: ignore[method-assign]

    async def main() -> None:
        client = await Client.connect(target, data_converter=TEST_CONVERTER)
        app = create_app(Database(db_url), client, SECRETS)
        await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve()

    asyncio.run(main())


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))

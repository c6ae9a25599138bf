"""`renewals stack` serves both metrics endpoints and the health endpoints, and says so only once
they answer: the worker's (the SDK's `temporal_*` and our `renewals_*` on one address) and the
webhook service's (`/metrics`, `/health/ready`, `/status`). Its own code, on free ports, as
tests/test_stack.py runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from renewals.settings import Settings
from starter.stack import run_stack
from tests.test_crash import free_port


async def test_the_stack_serves_metrics_and_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics, health = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/renewals.db",
        gateway_url=f"http://127.0.0.1:{free_port()}",
        gateway_smtp_port=free_port(),
        webhooks_port=free_port(),
        codec_server_port=free_port(),
        task_queue="stack-metrics",
        metrics_address=metrics,
        worker_health_address=health,
        metrics_poll_seconds=0.5,
        worker_shutdown_grace_seconds=1,
    )
    hooks = f"http://127.0.0.1:{settings.webhooks_port}"
    uvicorn_before = (list(logging.getLogger("uvicorn").handlers), logging.getLogger("uvicorn").propagate)
    running = asyncio.create_task(run_stack(settings, tmp_path, free_port()))
    printed = ""
    try:
        for _ in range(600):  # the banner comes only after both processes answer ready
            printed += capsys.readouterr().out
            if "Worker running" in printed or running.done():
                break
            await asyncio.sleep(0.2)
        assert "Worker running" in printed, printed
        assert f"Metrics: worker http://{metrics}/metrics, webhooks {hooks}/metrics" in printed
        assert f"{hooks}/health/ready" in printed and f"http://{health}/health/ready" in printed
        assert f"Status page: {hooks}/status" in printed
        async with httpx.AsyncClient(timeout=10) as http:
            for url in (f"{hooks}/health/ready", f"http://{health}/health/ready"):
                answer = await http.get(url)
                assert answer.status_code == 200, (url, answer.text)
            for url in (f"{hooks}/health/live", f"http://{health}/health/live"):
                assert (await http.get(url)).status_code == 200
            for _ in range(100):  # the sample journeys' first sends and the first gauge reading
                names = _names((await http.get(f"http://{metrics}/metrics")).text)
                if {"renewals_outbox_pending_rows", "renewals_journeys"} <= names and any(
                    n.startswith("temporal_") for n in names
                ):
                    break
                await asyncio.sleep(0.2)
            assert "renewals_outbox_pending_rows" in names and "renewals_journeys" in names
            assert "temporal_worker_task_slots_available" in names, sorted(names)
            webhook_metrics = await http.get(f"{hooks}/metrics")
            assert webhook_metrics.status_code == 200
            assert webhook_metrics.headers["content-type"].startswith("text/plain")
            status = await http.get(f"{hooks}/status")
            assert status.status_code == 200 and "Journeys by stage" in status.text
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    # What the stack started, it stopped: a webhook service left listening in this process would
    # take the next tests' requests to a Temporal that is gone (and log into their captured output).
    for port in (settings.webhooks_port, settings.codec_server_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    uvicorn = logging.getLogger("uvicorn")  # uvicorn's lines go through ours: no config of its own
    assert (uvicorn.handlers, uvicorn.propagate) == uvicorn_before


def _names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}

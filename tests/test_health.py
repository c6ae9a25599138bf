"""Health endpoints, callback counting, the status page (in a real browser) and structured logs.

The webhook service runs as `create_app` builds it (the stack and `renewals webhooks` alike) against
a real Temporal dev server and a real database; the worker's health app the same way. The status
page is served by a real uvicorn server and rendered by Debian's chromium through
`../shared/tools/ui_shot.py` (skipped, saying why, where chromium or playwright is missing).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from renewals.db.database import Database
from renewals.db.tables import OperatorTaskRow, OutboxRow
from renewals.delivery import ChannelPauses
from renewals.models import Channel
from renewals.observability.gauges import DatabaseGauges
from renewals.observability.health import health_app
from renewals.observability.logs import JsonFormatter, configure_logging, log_fields, mask_personal
from renewals.observability.status_page import render_status_page
from renewals.webhooks.app import create_app
from renewals.webhooks.auth import sign
from tests.browser import browser_or_skip, rendered_text
from tests.harness import local_dev_server
from tests.test_crash import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"sms": "s3cret"}


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await local_dev_server()
    yield env
    await env.shutdown()


def callbacks(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["source"], s.labels["result"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "renewals_webhook_callbacks_total"
    }


async def test_the_webhook_service_is_live_and_ready(
    temporal: WorkflowEnvironment, sqlite_db: Database
) -> None:
    with TestClient(create_app(sqlite_db, temporal.client, SECRETS)) as http:
        assert http.get("/health/live").json() == {"status": "ok"}
        ready = http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"temporal": "ok", "database": "ok"}}
        assert http.get("/health").status_code == 200  # the old route stays


async def test_not_ready_when_the_database_does_not_answer(temporal: WorkflowEnvironment) -> None:
    nowhere = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with TestClient(create_app(nowhere, temporal.client, SECRETS)) as http:
            ready = http.get("/health/ready")
            assert http.get("/health/live").status_code == 200  # alive: restarting would not help
    finally:
        await nowhere.dispose()
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert ready.json()["checks"]["temporal"] == "ok"
    assert ready.json()["checks"]["database"] != "ok"
    assert "postgres@" not in ready.text  # no URL (it may carry a password)


async def test_callbacks_are_counted_by_source_and_result(
    temporal: WorkflowEnvironment, sqlite_db: Database
) -> None:
    body = json.dumps({"event_id": "ev-1", "message_id": "no-such-message", "type": "delivered"}).encode()
    with TestClient(create_app(sqlite_db, temporal.client, SECRETS)) as http:
        assert http.post("/webhooks/sms", content=body).status_code == 401  # unsigned
        bad = http.post("/webhooks/sms", content=body, headers={"X-Signature": "sha256=00"})
        assert bad.status_code == 401
        huge = http.post("/webhooks/sms", content=b"{" + b" " * 70_000 + b"}")
        assert huge.status_code == 413
        signed = {"X-Signature": sign(SECRETS["sms"], body), "Content-Type": "application/json"}
        unknown = http.post("/webhooks/sms", content=body, headers=signed)
        assert unknown.status_code == 404, unknown.text
        counted = callbacks(http.get("/metrics").text)
        durations = http.get("/metrics").text
    assert counted == {("sms", "refused"): 2, ("sms", "rejected"): 1, ("sms", "unknown_journey"): 1}
    assert 'renewals_webhook_request_duration_seconds_count{source="sms"} 4.0' in durations


async def test_the_worker_health_app(temporal: WorkflowEnvironment, sqlite_db: Database) -> None:
    running = True
    with TestClient(health_app(temporal.client, sqlite_db, lambda: running)) as http:
        assert http.get("/health/ready").status_code == 200
        assert http.get("/health/live").status_code == 200
        running = False  # the workers stopped: liveness says so, and a supervisor restarts us
        assert http.get("/health/live").status_code == 503


async def seed(db: Database) -> None:
    """Today's sends, a backlog row, a pause and an open operator task — with personal data in the
    rows, which the page must not show."""
    now = datetime.now(UTC)
    rows = [("sms", "sent"), ("sms", "sent"), ("sms", "failed"), ("email", "sent")]
    rows += [("vk", "suppressed"), ("vk", "pending")]
    async with db.session() as session, session.begin():
        for i, (channel, status) in enumerate(rows):
            session.add(
                OutboxRow(
                    dedup_key=f"renewal-P{i}-20270101:d-30-{channel}:{channel}",
                    journey_id=f"renewal-P{i}-20270101",
                    touchpoint=f"d-30-{channel}",
                    channel=channel,
                    recipient="+79161234567",
                    template="rc_sms_30",
                    text="Иван Петрович, …",
                    status=status,
                    created_at=now - timedelta(minutes=10),
                    updated_at=now,
                )
            )
        session.add(
            OperatorTaskRow(
                dedup_key="renewal-P9-20270101:d-17:operator_task",
                journey_id="renewal-P9-20270101",
                policy_number="P9",
                centre_id="msk",
                reason="−17",
                text="call",
                status="open",
                created_at=now - timedelta(hours=3),
            )
        )
    await ChannelPauses(db).pause_channel(Channel.SMS, "InsufficientFunds: top up the account", now)


async def test_the_status_page_shows_the_numbers_and_no_personal_data(sqlite_db: Database) -> None:
    await seed(sqlite_db)
    snap = await DatabaseGauges(sqlite_db).read()
    assert snap.pending == {"vk": 1}
    assert snap.sends_today[("sms", "sent")] == 2
    assert [p.channel for p in snap.pauses] == ["sms"]
    assert snap.tasks == {"open": 1}
    assert 3 * 3600 - 60 < snap.oldest_open_task < 3 * 3600 + 60
    page = render_status_page(snap)
    assert "sms paused" in page and "InsufficientFunds" in page
    assert '<td>sms</td><td>2</td><td class="zero">0</td><td>1</td>' in page  # sent, suppressed, failed
    for personal in ("+79161234567", "Иван", "renewal-P", "P9"):
        assert personal not in page


@pytest.fixture
async def served(temporal: WorkflowEnvironment, sqlite_db: Database) -> AsyncIterator[str]:
    await seed(sqlite_db)
    port = free_port()
    config = uvicorn.Config(
        create_app(sqlite_db, temporal.client, SECRETS), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                if (await http.get(f"{url}/health/live")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    yield url
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def test_the_status_page_renders_in_a_real_browser(served: str, tmp_path: Path) -> None:
    browser_or_skip()
    shot = tmp_path / "status.png"
    text = await rendered_text(f"{served}/status", shot)
    for expected in ("Channel pauses", "sms paused", "Outbox backlog"):
        assert expected in text, expected
    assert "No such text" not in text  # the check can fail
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_json_log_lines_carry_the_journey_fields_and_mask_personal_data() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level  # pytest's own capture handlers
    handler = configure_logging("auto", "INFO", stream)  # a StringIO is no terminal: JSON
    try:
        assert isinstance(handler.formatter, JsonFormatter)
        token = log_fields.set(
            (
                {"journey_id": "renewal-X1-20270101", "touchpoint": "d-30-sms", "dedup_key": "k"},
                ("Иванов Иван",),
            )
        )
        try:
            logging.getLogger("test").warning("provider said: bad number 8 (916) 123-45-67 for Иванов Иван")
        finally:
            log_fields.reset(token)
        logging.getLogger("test").info("mail to ivan.petrov@example.org bounced")
        workflow = {"workflow_id": "renewal-X2-20270101", "workflow_type": "RenewalJourney"}
        logging.getLogger("temporalio.workflow").warning("woke", extra={"temporal_workflow": workflow})
    finally:
        root.removeHandler(handler)
        for kept_handler in kept:
            root.addHandler(kept_handler)
        root.setLevel(level)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert third["journey_id"] == "renewal-X2-20270101"  # workflow.logger's lines name their journey
    assert first["journey_id"] == "renewal-X1-20270101" and first["touchpoint"] == "d-30-sms"
    assert first["level"] == "warning" and first["dedup_key"] == "k"
    assert "123-45-67" not in first["message"] and "Иванов Иван" not in first["message"]
    assert "journey_id" not in second and "ivan.petrov@" not in second["message"]
    assert mask_personal("+79161234567") == "+7916***4567"
    assert mask_personal("policy ХХХ0123456789 at 2027-04-20") == "policy ХХХ0123456789 at 2027-04-20"

"""The worker's metrics tell the truth: a burst of journeys through the real worker process and the
fake provider gateway, then the worker's Prometheus endpoint is scraped and every send counter is
compared with what the gateway's log and the outbox say — per channel and result, failures by error
class. Then a real Prometheus scrapes the same worker with the shipped rules
(deploy/prometheus/renewals-rules.yml), the gateway starts answering SMS with "no funds", and the
`RenewalsChannelPaused` alert is shown to fire.

Real parts only, as tests/test_crash.py: the Temporal dev server, the gateway and the worker as
separate processes (`python worker.py`, channels=gateway, a SQLite outbox), plus Debian's
`prometheus` for the firing test (skipped, saying so, where it is not installed: `./run test`
installs it as root).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from fake_providers.request_log import messages_per_key, read_jsonl
from renewals.models import Agent, Policy, Product, RegionalCentre
from renewals.models import Client as PolicyClient
from renewals.observability.metrics import BY_NAME
from renewals.sendwindow import zone
from renewals.temporal.journeys import start_journey
from tests.harness import local_dev_server
from tests.test_crash import ALL_DAY, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "renewals-rules.yml"
QUEUE = "metrics"
JOURNEYS = 24
INVALID = [f"+7999000000{i}" for i in range(4)]  # the gateway refuses these numbers: SMS failed
BLOCKED_VK = ["90001", "90002"]  # these VK users forbid messages: VK failed


@dataclass
class Stack:
    env: WorkflowEnvironment
    gateway: str
    log: Path
    database: Path
    metrics: str
    health: str
    worker: subprocess.Popen[bytes]
    worker_log: Path


def policy(i: int, today: datetime) -> Policy:
    phone = INVALID[i] if i < len(INVALID) else f"+7916{i:07d}"
    vk = BLOCKED_VK[i - 10] if 10 <= i < 10 + len(BLOCKED_VK) else str(10_000 + i)
    return Policy(
        number=f"METRICS-{i:04d}",
        product=Product.KASKO,
        expires_on=today.date() + timedelta(days=30),
        renewal_centre=True,
        client=PolicyClient(
            last_name="Иванов", first_name="Иван", phone=phone, email=f"m{i}@example.org", vk_id=vk
        ),
        agent=Agent(id="A-1", name="Петрова Анна", phone="+79031112233"),
        regional_centre=RegionalCentre(id="msk", name="Москва", phone="+74957770000"),
    )


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("metrics")
    env = await local_dev_server()
    port, smtp_port, log = free_port(), free_port(), tmp / "gateway.jsonl"
    gateway = subprocess.Popen(
        [sys.executable, "-m", "fake_providers", "--port", str(port), "--smtp-port", str(smtp_port),
         "--log", str(log)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    metrics, health = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    database = tmp / "metrics.db"
    worker_env = {
        **os.environ,
        "RENEWALS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "RENEWALS_TASK_QUEUE": QUEUE,
        "RENEWALS_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "RENEWALS_CHANNELS": "gateway",
        "RENEWALS_GATEWAY_URL": url,
        "RENEWALS_GATEWAY_SMTP_PORT": str(smtp_port),
        "RENEWALS_VK_PER_SECOND": "10000",
        "RENEWALS_METRICS_ADDRESS": metrics,
        "RENEWALS_WORKER_HEALTH_ADDRESS": health,
        "RENEWALS_METRICS_POLL_SECONDS": "0.5",
        "RENEWALS_WORKER_SHUTDOWN_GRACE_SECONDS": "1",  # stopped within the fixture's 30 s
        "RENEWALS_LOG_FORMAT": "json",
    }
    worker_log = tmp / "worker.log"
    with worker_log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=worker_env, stdout=out, stderr=out
        )
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            await _until_answers(http, f"{url}/admin/faults", worker)
            faults = {"invalid_phones": INVALID, "blocked_recipients": BLOCKED_VK}
            (await http.put(f"{url}/admin/faults", json=faults)).raise_for_status()
        yield Stack(
            env, url, log, database, f"http://{metrics}/metrics", f"http://{health}", worker, worker_log
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        gateway.terminate()
        gateway.wait(timeout=30)
        await env.shutdown()


async def _until_answers(http: httpx.AsyncClient, url: str, worker: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited with {worker.returncode}")
        try:
            if (await http.get(url)).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing answers on {url}")


def outbox(database: Path) -> list[tuple[str, str, str, str | None]]:
    """(channel, status, template, reason) of every outbox row."""
    if not database.exists():
        return []
    with sqlite3.connect(database, timeout=10) as connection:
        try:
            return list(connection.execute("SELECT channel, status, template, reason FROM outbox"))
        except sqlite3.OperationalError:  # not migrated yet
            return []


def scrape(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


async def test_send_counters_equal_the_gateway_log_and_the_outbox(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await _until_answers(http, f"{stack.health}/health/live", stack.worker)
        live = await http.get(f"{stack.health}/health/live")
        await wait_until(lambda: stack.worker.poll() is None, 1, "the worker")
        ready = await http.get(f"{stack.health}/health/ready")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"temporal": "ok", "database": "ok"}

        today = datetime.now(zone("Europe/Moscow"))
        policies = [policy(i, today) for i in range(JOURNEYS)]
        await asyncio.gather(*(start_journey(stack.env.client, p, QUEUE, ALL_DAY) for p in policies))
        expected_rows = 3 * JOURNEYS  # the −30 e-mail, VK and SMS of each renewal-centre journey
        await wait_until(
            lambda: len([r for r in outbox(stack.database) if r[1] != "pending"]) >= expected_rows,
            300,
            "every send settled in the outbox",
        )

        async def gauges_drained() -> dict[str, list[tuple[dict[str, str], float]]]:
            for _ in range(100):  # the gauges are read every 0.5 s; a count follows its row's commit
                samples = scrape((await http.get(stack.metrics)).text)
                drained = total(samples, "renewals_outbox_pending_rows") == 0
                counted = total(samples, "renewals_sends_total") >= expected_rows
                journeys = total(samples, "renewals_journeys") >= JOURNEYS  # a polled visibility count
                if drained and counted and journeys:
                    return samples
                await asyncio.sleep(0.2)
            raise AssertionError("the metrics never showed the drained backlog with every send counted")

        samples = await gauges_drained()

    rows = outbox(stack.database)
    lines = read_jsonl(stack.log)
    reached = Counter(channel for channel, _ in messages_per_key(lines))
    by_outbox = Counter((channel, status) for channel, status, _, _ in rows)
    print(f"\noutbox {dict(by_outbox)}; gateway {dict(reached)}")
    for channel, gateway_channel in (("sms", "sms"), ("email", "email"), ("vk", "vk")):
        sent = total(samples, "renewals_sends_total", channel=channel, result="sent")
        assert sent == reached[gateway_channel] == by_outbox[(channel, "sent")], channel
        failed = total(samples, "renewals_sends_total", channel=channel, result="failed")
        assert failed == by_outbox[(channel, "failed")], channel
    assert (
        total(samples, "renewals_sends_total", channel="sms", result="failed", error_class="InvalidPhone")
        == 4
    )
    assert by_outbox[("sms", "failed")] == len(INVALID)
    assert total(samples, "renewals_sends_total", channel="vk", result="failed") == len(BLOCKED_VK)
    assert total(samples, "renewals_sends_total") == len(rows) == expected_rows
    # templates and providers as labels, never a journey or a policy
    templates = {labels["template"] for labels, _ in samples["renewals_sends_total"]}
    assert templates == {template for _, _, template, _ in rows}
    sends = samples["renewals_sends_total"]
    sent_by = {labels["provider"] for labels, _ in sends if labels["result"] == "sent"}
    assert sent_by <= {"smsc", "vk", "smtp", "sms-failover", "email-failover", "unisender"}
    for name, found in samples.items():
        for labels, _ in found:
            assert not any("METRICS-" in value or "renewal-" in value for value in labels.values()), (
                name,
                labels,
            )

    # every accepted message was one timed provider call that succeeded (the failures: calls that erred)
    deliveries = total(
        samples, "renewals_provider_request_duration_seconds_count", operation="deliver", outcome="ok"
    )
    assert deliveries == sum(reached.values())
    assert total(samples, "renewals_send_lateness_seconds_count") == sum(reached.values())
    assert total(samples, "renewals_journeys_started_total", workflow_type="RenewalJourney") == JOURNEYS
    assert total(samples, "renewals_journeys") == JOURNEYS
    assert total(samples, "renewals_sends_in_flight") == 0
    # the SDK's own metrics on the same endpoint, with Prometheus' naming (counters _total, _seconds)
    assert "temporal_workflow_task_schedule_to_start_latency_seconds_bucket" in samples
    assert "temporal_request_total" in samples
    for name in samples:
        base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        if name.startswith("renewals_"):
            assert base in BY_NAME or name in BY_NAME, f"{name} is not in the catalogue"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "renewals-dashboard.json").read_text())
    for panel in dashboard["panels"]:  # the SDK metrics the dashboard plots exist under those names
        for target in panel["targets"]:
            for word in target["expr"].replace("(", " ").replace(")", " ").replace("[", " ").split():
                if word.startswith("temporal_"):
                    assert word in samples or f"{word}_bucket" in samples, word

    # JSON log lines with the journey's fields, and no personal data
    events = [json.loads(line) for line in stack.worker_log.read_text().splitlines() if line.startswith("{")]
    failed_sends = [e for e in events if "failed permanently" in e["message"]]
    assert failed_sends, "the worker logged no permanent failure"
    for event in failed_sends:
        assert event["journey_id"].startswith("renewal-METRICS-")
        assert event["dedup_key"].startswith(event["journey_id"])
        assert event["touchpoint"]
    text = stack.worker_log.read_text()
    for p in [policy(i, datetime.now(zone("Europe/Moscow"))) for i in range(JOURNEYS)]:
        assert p.client.phone.lstrip("+") not in text and (
            p.client.email is None or p.client.email not in text
        )


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("no `prometheus` binary: Debian's package `prometheus` (./run test installs it as root)")
    return found


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    binary = _prometheus()
    port = free_port()
    target = stack.metrics.removeprefix("http://").removesuffix("/metrics")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        f"scrape_configs:\n  - job_name: renewals-worker\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with (tmp_path / "prometheus.log").open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_a_paused_channel_fires_its_alert_in_a_real_prometheus(stack: Stack, prometheus: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:

        async def alerts() -> list[dict[str, object]]:
            try:
                answer = await http.get(f"{prometheus}/api/v1/alerts")
            except httpx.HTTPError:
                return []
            return list(answer.json()["data"]["alerts"]) if answer.status_code == 200 else []

        async def firing(name: str) -> list[dict[str, object]]:
            return [a for a in await alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]  # type: ignore[index]

        for _ in range(100):  # Prometheus up, the worker scraped, nothing paused yet
            answer = (
                await http.get(f"{prometheus}/api/v1/query", params={"query": "up"})
                if await _up(http, prometheus)
                else None
            )
            if answer is not None and answer.json()["data"]["result"]:
                break
            await asyncio.sleep(0.3)
        else:
            raise AssertionError("Prometheus never scraped the worker")
        assert not await firing("RenewalsChannelPaused")

        faults = {"invalid_phones": INVALID, "blocked_recipients": BLOCKED_VK, "insufficient_funds": True}
        (await http.put(f"{stack.gateway}/admin/faults", json=faults)).raise_for_status()
        today = datetime.now(zone("Europe/Moscow"))
        await start_journey(stack.env.client, policy(JOURNEYS + 1, today), QUEUE, ALL_DAY)
        for _ in range(300):
            fired = await firing("RenewalsChannelPaused")
            if fired:
                break
            await asyncio.sleep(0.3)
        else:
            raise AssertionError(f"RenewalsChannelPaused never fired: {await alerts()}")
    assert [alert["labels"]["channel"] for alert in fired] == ["sms"]  # type: ignore[index]
    pauses_total = scrape(httpx.get(stack.metrics).text)
    assert (
        total(pauses_total, "renewals_channel_pauses_total", channel="sms", error_class="InsufficientFunds")
        >= 1
    )


async def _up(http: httpx.AsyncClient, prometheus: str) -> bool:
    try:
        return (await http.get(f"{prometheus}/-/ready")).status_code == 200
    except httpx.HTTPError:
        return False

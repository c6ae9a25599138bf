"""The send counters equal the outbox over whole journeys, every path included.

Journeys run from intake to the end of cover on the time-skipping server, with the worker
interceptor and the timed providers of `renewals/observability` wired exactly as `worker.py` wires
them, and the metrics scraped from a real Prometheus endpoint of an SDK runtime. Whatever a journey
did — sent, failed for good, suppressed by the journey itself (no address, the journey finished, a
robot call past its hours), settled by the send activity or by `record_suppressed` afterwards — each
outbox row is one count, with its channel, template and result. A second journey fails its SMS for
good (the recording channel refuses the number), so the failure path is in it too; a third's e-mail
is on the do-not-contact list, so its e-mails are suppressed by the send activity's own claim.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.renewal import JourneyActivities
from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError
from renewals.channels.recording import RecordingMessages
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.journey_api import JourneyInput
from renewals.models import journey_id
from renewals.observability.runtime import metrics_runtime
from renewals.observability.telemetry import WorkerTelemetry
from renewals.temporal.setup import register_search_attributes
from starter.binaries import find_binary
from tests.factories import policy
from tests.harness import INTAKE, TASK_QUEUE, channels_with
from tests.keys import TEST_CONVERTER
from tests.test_crash import free_port
from worker import build_worker
from workflows.renewal import RenewalJourney

REFUSED = "+79160000002"
UNSUBSCRIBED = "gone@example.org"


class RefusingOne(RecordingMessages):
    """The recording SMS channel, except that one number is refused for good (as SMSC refuses a
    number it cannot deliver to)."""

    async def send(self, request: SendRequest) -> str:
        if request.recipient == REFUSED:
            raise PermanentSendError("InvalidPhone", "the gateway refused the number")
        return await super().send(request)


def scrape(address: str) -> list[tuple[dict[str, str], float]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "renewals_sends_total"
    ]


async def test_send_counters_equal_the_outbox_over_whole_journeys(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=TEST_CONVERTER
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/journeys.db")
    try:
        await db.migrate()
        await register_search_attributes(env.client)
        telemetry = WorkerTelemetry(runtime, db)
        channels = telemetry.channels(channels_with(db, sms=RefusingOne(db)))
        activities = JourneyActivities(db, channels)
        interceptors = telemetry.interceptors(channels)
        centre = policy("KASKO", renewal_centre=True)  # e-mail, VK, SMS, robot calls, operator
        base = policy("OSAGO", number="ХХХ 0000000002", client={"phone": REFUSED})  # base SMS, refused
        listed = policy(  # its e-mail listed: that channel suppressed, the journey goes on
            "KASKO",
            number="ХХХ 0000000003",
            renewal_centre=True,
            client={"phone": "+79160000003", "email": UNSUBSCRIBED, "vk_id": "3003"},
        )
        await activities.opt_outs.add([UNSUBSCRIBED], "unsubscribed", None, source="register")
        async with build_worker(
            env.client, TASK_QUEUE, activities, fail_fast=True, interceptors=interceptors
        ):
            delta = INTAKE - await env.get_current_time()
            await env.sleep(delta)
            handles = [
                await env.client.start_workflow(
                    RenewalJourney.run,
                    JourneyInput(policy=p),
                    id=journey_id(p.number, p.expires_on),
                    task_queue=TASK_QUEUE,
                )
                for p in (centre, base, listed)
            ]
            for handle in handles:
                await handle.result()
        async with db.session() as session:
            rows = (
                await session.execute(select(OutboxRow.channel, OutboxRow.status, OutboxRow.template))
            ).all()
    finally:
        await db.dispose()
        await env.shutdown()

    in_outbox = Counter((channel, status, template) for channel, status, template in rows)
    counted: Counter[tuple[str, str, str]] = Counter()
    opted_out = 0
    for labels, value in scrape(address):
        counted[(labels["channel"], labels["result"], labels["template"])] += int(value)
        if labels["error_class"] == "OptedOut":
            opted_out += int(value)
    print(f"\noutbox {dict(in_outbox)}")
    assert counted == in_outbox
    assert {status for _, status, _ in in_outbox} >= {"sent", "failed", "suppressed"}
    assert opted_out == 2  # its −30 and −17 e-mails: settled by the claim, counted from the error
    assert sum(in_outbox.values()) >= 5


def test_a_taken_metrics_port_is_named_with_the_setting_to_change() -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    with pytest.raises(RuntimeError, match=f"cannot serve metrics on {address}.*RENEWALS_METRICS_ADDRESS"):
        metrics_runtime(address)
    assert runtime.metric_meter is not None


def sla_counts(address: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, sample.labels["clock"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("renewals_sla_warnings_total", "renewals_sla_breaches_total")
    }


async def test_sla_warnings_and_breaches_are_counted_by_clock(tmp_path: Path) -> None:
    """One application breaches its calculation clock (warned at 10 business minutes, breached at 15),
    one keeps it: one warning and one breach, on the `calculation` clock, through the real
    PartnerApplication and its activities with the worker's interceptor."""
    from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
    from temporalio.worker import Worker

    from activities.sla import SlaActivities
    from starter.sla.inputs import parse_simulation, simulation_runs
    from starter.sla.simulate import SLA_WORKFLOWS, register_sla_search_attributes
    from tests.sla_support import RecordingNotifier
    from tests.test_sla_journey import APPLICATIONS, TODAY
    from workflows.runner import SANDBOXED_RUNNER
    from workflows.sla_simulation import SimulateApplication

    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    chosen = [a for a in APPLICATIONS if a["id"] in ("calc-breach", "normal")]
    runs = simulation_runs(parse_simulation({"applications": chosen}, TODAY))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=TEST_CONVERTER
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/sla.db")
    try:
        await db.migrate()
        await register_sla_search_attributes(env.client)
        telemetry = WorkerTelemetry(runtime, db)
        activities = SlaActivities(db, RecordingNotifier())
        worker = Worker(
            env.client,
            task_queue="sla-metrics",
            workflows=[*SLA_WORKFLOWS, SimulateApplication],
            activities=activities.all(),
            workflow_runner=SANDBOXED_RUNNER,
            interceptors=telemetry.interceptors(channels_with(db)),
        )
        async with worker:
            with env.auto_time_skipping_disabled():
                handles = [
                    await env.client.start_workflow(
                        SimulateApplication.run, run, id=f"m-{run.workflow_id}", task_queue="sla-metrics"
                    )
                    for run in runs
                ]
                await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
                try:
                    for handle in handles:
                        await handle.result()
                finally:
                    await env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())
    finally:
        await db.dispose()
        await env.shutdown()
    assert sla_counts(address) == {
        ("renewals_sla_warnings_total", "calculation"): 1,
        ("renewals_sla_breaches_total", "calculation"): 1,
    }

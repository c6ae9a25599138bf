"""Delivery guarantees through the real adapters and the sandbox gateway's real HTTP/SMTP APIs:
under injected faults every message arrives exactly once, permanent errors are recorded and not
retried, and an SMS provider outage fails over without sending anything twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType, RetryState

from renewals.channels.factory import build_channels, gateway_settings
from renewals.channels.smsc import SmscConfig
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.gateway import Gateway, SmtpSink, create_app
from renewals.gateway.config import FaultConfig, GatewayConfig
from renewals.sendwindow import zone
from renewals.settings import Settings
from tests.factories import policy
from tests.harness import journey_harness
from tests.test_gateway_helpers import serve
from workflows.renewal import RenewalJourney

MSK = zone("Europe/Moscow")
INTAKE = datetime(2027, 3, 1, 10, tzinfo=MSK)
AFTER_MINUS_30 = datetime(2027, 3, 21, 14, tzinfo=MSK)  # −30 is Sunday 21.03, sent from 09:00


@dataclass
class Sandbox:
    gateway: Gateway
    settings: Settings


@asynccontextmanager
async def sandbox_gateway(tmp_path: Path, faults: FaultConfig) -> AsyncIterator[Sandbox]:
    gateway = Gateway(GatewayConfig(log_path=tmp_path / "gateway.jsonl", faults=faults))
    sink = SmtpSink(gateway)
    await sink.start()
    try:
        async with serve(create_app(gateway)) as url:
            yield Sandbox(
                gateway,
                Settings(
                    channels="gateway",
                    gateway_url=url,
                    gateway_smtp_port=sink.port,
                    provider_timeout_seconds=1.0,
                ),
            )
    finally:
        await gateway.aclose()
        await sink.stop()


def centre_policy(i: int, phone: str | None = None):  # type: ignore[no-untyped-def]
    return policy(
        "KASKO",
        number=f"GW-{i:04d}",
        renewal_centre=True,
        client={"phone": phone or f"+7916{i:07d}", "email": f"c{i}@example.org", "vk_id": str(5000 + i)},
    )


async def test_thirty_percent_faults_every_message_exactly_once(tmp_path: Path) -> None:
    bad_phone = "+79990000001"
    faults = FaultConfig(
        error_rate=0.1,
        rate_limit_rate=0.1,
        timeout_rate=0.1,
        hang_seconds=3,
        invalid_phones=[bad_phone],
        seed=7,
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/faults.db")
    async with sandbox_gateway(tmp_path, faults) as sandbox:
        channels = build_channels(sandbox.settings, db)
        async with journey_harness(tmp_path, channels, db) as h:
            policies = [centre_policy(i) for i in range(40)] + [centre_policy(99, phone=bad_phone)]
            handles = [await h.start(p, INTAKE) for p in policies]
            await h.skip_to(AFTER_MINUS_30)
            statuses = [await handle.query(RenewalJourney.status) for handle in handles]
            bad_history = await handles[-1].fetch_history()
        records = sandbox.gateway.log.records()
        async with db.session() as session:
            outbox = (await session.execute(select(OutboxRow))).scalars().all()
    await db.dispose()

    per_channel = Counter(r.channel for r in records)
    assert per_channel == {"email": 41, "vk": 41, "sms": 40}  # the invalid phone got no SMS
    assert len({(r.channel, r.key) for r in records}) == len(records)  # one record per dedup key
    assert {r.recipient for r in records if r.channel == "sms"} == {f"7916{i:07d}" for i in range(40)}
    for status in statuses[:-1]:
        assert [(e.channel.value, e.status.value) for e in status.timeline] == [
            ("email", "sent"),
            ("vk", "sent"),
            ("sms", "sent"),
        ]
    bad = {e.channel.value: e for e in statuses[-1].timeline}
    assert bad["sms"].status.value == "failed" and (bad["sms"].reason or "").startswith("InvalidPhone:")
    assert bad["email"].status.value == "sent"
    failures = [
        e.activity_task_failed_event_attributes
        for e in bad_history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert failures[-1].retry_state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE  # not retried
    assert Counter(r.status for r in outbox) == {"sent": 122, "failed": 1}
    assert next(r.reason for r in outbox if r.status == "failed").startswith("InvalidPhone:")


async def test_sms_provider_outage_fails_over_and_sends_nothing_twice(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/outage.db")
    async with sandbox_gateway(tmp_path, FaultConfig()) as sandbox:
        via_gateway = gateway_settings(sandbox.settings)
        assert via_gateway.smsc is not None
        dead = SmscConfig(base_url="http://127.0.0.1:9", login="sandbox", password=SecretStr("x"))
        settings = via_gateway.model_copy(
            update={"channels": "providers", "smsc": dead, "smsc_backup": via_gateway.smsc}
        )
        async with journey_harness(tmp_path, build_channels(settings, db), db) as h:
            handles = [
                await h.start(
                    policy(
                        "OSAGO",
                        number=f"OUT-{i}",
                        first_prolongation_year=True,
                        client={"phone": f"+7903{i:07d}"},
                    ),
                    INTAKE,
                )
                for i in range(10)
            ]
            await h.skip_to(AFTER_MINUS_30)
            statuses = [await handle.query(RenewalJourney.status) for handle in handles]
        sms = sandbox.gateway.log.records(channel="sms")
        async with db.session() as session:
            providers = (await session.execute(select(OutboxRow.provider))).scalars().all()
    await db.dispose()
    assert all(s.timeline[0].status.value == "sent" for s in statuses)
    assert len(sms) == 10 and len({r.key for r in sms}) == 10
    assert providers == ["smsc-backup"] * 10

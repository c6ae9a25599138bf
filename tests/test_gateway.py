"""The fake providers' gateway itself: the JSONL log, admin API, seeded faults, the entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fake_providers import FaultConfig, Gateway, GatewayConfig, create_app
from fake_providers.__main__ import build
from fake_providers.faults import Fault, FaultInjector
from fake_providers.request_log import messages_per_key, read_jsonl
from renewals.channels.base import PermanentSendError
from renewals.channels.email import EmailConfig, EmailProvider
from renewals.channels.smsc import SmscConfig, SmscProvider
from renewals.channels.vk import VkConfig, VkProvider
from renewals.models import Channel
from tests.test_gateway_helpers import OTHER_PHONE, asgi_client, send_request, serve


def smsc(gateway: Gateway) -> SmscProvider:
    return SmscProvider(SmscConfig(base_url="http://gw", login="l", password="p"), asgi_client(gateway))


async def test_jsonl_log_is_append_only_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "log" / "gateway.jsonl"
    first = Gateway(GatewayConfig(log_path=path))
    await smsc(first).send(send_request())
    await smsc(first).send(send_request(touchpoint="d-5-sms"))
    assert [line["seq"] for line in read_jsonl(path)] == [1, 2]
    restarted = Gateway(GatewayConfig(log_path=path))
    await smsc(restarted).send(send_request(resumed=True))  # reconciles: the restarted log knows it
    assert len(read_jsonl(path)) == 2
    await smsc(restarted).send(send_request())  # sent again without asking: SMSC sends it again
    lines = read_jsonl(path)
    assert len(lines) == 3 and {line["channel"] for line in lines} == {"sms"}
    assert (lines[2]["key"], lines[2]["repeat"], lines[2]["deduplicated"]) == (lines[0]["key"], True, False)
    assert restarted.log.repeats == {("sms", lines[0]["key"]): 1}
    # The second copy counts: a test that counts messages per key sees the duplicate.
    assert messages_per_key(lines)[("sms", lines[0]["key"])] == 2


async def test_every_request_is_logged_and_the_admin_api_shows_repeats() -> None:
    """Item 1: a repeated key gets its own line; deduplicating providers flag it, SMSC does not."""
    gateway = Gateway(GatewayConfig(faults=FaultConfig(invalid_phones=[OTHER_PHONE])))
    vk = VkProvider(VkConfig(base_url="http://gw/method", access_token="t", group_id=1), asgi_client(gateway))
    vk_request = send_request(channel=Channel.VK, recipient="123", touchpoint="d-30-vk")
    first = await vk.send(vk_request)
    assert await vk.send(vk_request) == first  # VK answers the first message's id
    await smsc(gateway).send(send_request())
    await smsc(gateway).send(send_request())
    with pytest.raises(PermanentSendError):
        await smsc(gateway).send(send_request(recipient=OTHER_PHONE))
    lines = [r.model_dump() for r in gateway.log.records()]
    assert [(line["channel"], line["repeat"], line["deduplicated"]) for line in lines] == [
        ("vk", False, False),
        ("vk", True, True),
        ("sms", False, False),
        ("sms", True, False),
    ]
    assert sorted(messages_per_key(lines).values()) == [1, 2]  # VK sent once, SMS twice
    async with asgi_client(gateway) as admin:
        stats = (await admin.get("/admin/stats")).json()
        assert stats["channels"]["vk"] == {
            "lines": 2,
            "keys": 1,
            "repeats": 1,
            "deduplicated": 1,
            "messages": 1,
        }
        assert stats["channels"]["sms"] == {
            "lines": 2,
            "keys": 1,
            "repeats": 1,
            "deduplicated": 0,
            "messages": 2,
        }
        assert {(r["channel"], r["repeats"]) for r in stats["repeated"]} == {("vk", 1), ("sms", 1)}
        requests = (await admin.get("/admin/requests", params={"channel": "sms"})).json()
        assert [r["outcome"] for r in requests] == ["accepted", "repeat", "rejected:7"]
        assert requests[2]["recipient"] == "79031112233"
        vk = (await admin.get("/admin/requests", params={"channel": "vk", "recipient": "123"})).json()
        assert [(r["endpoint"], r["outcome"]) for r in vk] == [("send", "accepted"), ("send", "repeat")]


async def test_admin_api() -> None:
    gateway = Gateway()
    async with asgi_client(gateway) as admin:
        await smsc(gateway).send(send_request())
        messages = (await admin.get("/admin/messages", params={"channel": "sms"})).json()
        assert len(messages) == 1 and messages[0]["recipient"] == "79161234567"
        assert (await admin.get("/admin/messages", params={"key": "nope"})).json() == []
        put = await admin.put("/admin/faults", json={"error_rate": 1.0, "seed": 3})
        assert put.status_code == 200 and gateway.config.faults.error_rate == 1.0
        assert (await admin.get("/admin/faults")).json()["seed"] == 3
        assert (await admin.put("/admin/faults", json={"error_rate": 2})).status_code == 422
        await admin.put("/admin/faults", json={})
        await admin.put(
            "/admin/portal/renewals/AB 1/2", params={"expires_on": "2027-04-20"}, json={"quote": True}
        )
        await admin.put("/admin/portal/agents/A-1", json={"id": "A-1", "name": "Иванова"})
        renewal = await admin.get("/api/v1/renewals/AB%201%2F2", params={"expires_on": "2027-04-20"})
        assert renewal.json() == {"draft": False, "quote": True, "paid": False}
        assert (await admin.get("/api/v1/agents/A-1")).json()["name"] == "Иванова"
        assert (await admin.put("/admin/robot/script/+79161234567", json=["agreed"])).status_code == 200
        assert (await admin.post("/admin/release")).json() == {"released": True}
        assert (await admin.get("/healthz")).json() == {"status": "ok"}


def test_seeded_faults_are_deterministic() -> None:
    config = FaultConfig(error_rate=0.3, rate_limit_rate=0.2, timeout_rate=0.1, stall_rate=0.1, seed=42)

    def run(config: FaultConfig) -> list[Fault]:
        injector = FaultInjector(config)
        return [injector.decide("sms") for _ in range(200)]

    runs = [run(config), run(config)]
    assert runs[0] == runs[1]
    counts = {fault: runs[0].count(fault) for fault in Fault}
    assert all(counts[f] > 0 for f in Fault)
    assert run(config.model_copy(update={"seed": 7})) != runs[0]
    scoped = FaultInjector(FaultConfig(error_rate=1.0, channels=["vk"]))
    assert (scoped.decide("sms"), scoped.decide("vk")) == (Fault.NONE, Fault.ERROR)


async def test_error_rate_one_answers_5xx_and_records_nothing() -> None:
    gateway = Gateway(GatewayConfig(faults=FaultConfig(error_rate=1.0)))
    async with asgi_client(gateway) as client:
        response = await client.post("/sys/send.php", data={"phones": "79161234567", "mes": "x", "id": "1"})
    assert response.status_code == 503 and gateway.log.records() == []


async def test_entry_point_app_serves_http_and_smtp(tmp_path: Path) -> None:
    """`build()` is what `python -m fake_providers` runs: uvicorn + the SMTP sink in its lifespan."""
    with_port = tmp_path / "gw.jsonl"
    app = build(GatewayConfig(log_path=with_port), "127.0.0.1", smtp_port=0)
    async with serve(app) as url:
        provider = SmscProvider(SmscConfig(base_url=url, login="l", password="p"))
        await provider.send(send_request())
        await provider.aclose()
        async with httpx.AsyncClient(base_url=url) as client:
            assert len((await client.get("/admin/messages")).json()) == 1
        gateway: Gateway = app.state.gateway
        sink_port = app.state.smtp_port
        email = EmailProvider(
            EmailConfig(host="127.0.0.1", port=sink_port, sender_address="r@alfa.example", start_tls=False)
        )
        await email.send(
            send_request(channel=Channel.EMAIL, recipient="c@example.ru", touchpoint="d-30-email")
        )
        assert len(gateway.log.records("email")) == 1
    assert {line["channel"] for line in read_jsonl(with_port)} == {"sms", "email"}


def test_module_entry_point_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fake_providers", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--smtp-port" in out and "--log" in out


async def test_create_app_default_gateway() -> None:
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        assert (await client.get("/admin/messages")).json() == []

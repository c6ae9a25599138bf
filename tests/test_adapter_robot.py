"""Робот Даша over HTTP: the call task, errors, the outcome webhook, against the gateway."""

from __future__ import annotations

import json
from datetime import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from fake_providers import FaultConfig, Gateway, GatewayConfig, messages_per_key
from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.channels.robot_http import RobotHttpConfig, RobotHttpProvider, parse_outcome_webhook
from renewals.journey_api import RobotOutcome
from renewals.models import Channel
from renewals.webhooks.auth import authentic
from renewals.webhooks.payloads import RobotCallback
from tests.test_gateway_helpers import PHONE, asgi_client, mock_client

CONFIG = RobotHttpConfig(
    base_url="https://robot.test", api_key="k3y", window_start=time(9, 30), window_end=time(19, 0)
)
CALL = SendRequest(
    journey_id="renewal-AB123-20270420",
    touchpoint="d-29-robot",
    channel=Channel.ROBOT_CALL,
    template="robot_dasha",
    recipient=PHONE,
    text="kasko_v1",
    attempt=1,
)


def robot(handler: object) -> RobotHttpProvider:
    return RobotHttpProvider(CONFIG, client=mock_client(handler))


async def test_posts_task_and_returns_provider_id_without_outcome() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"task_id": "vx-77", "status": "queued"})

    result = await robot(handler).deliver(CALL)
    assert (result.message_id, result.outcome) == ("vx-77", None)
    body = json.loads(seen[0].content)
    assert body["client_task_id"] == CALL.dedup_key and body["phone"] == PHONE
    assert (body["start_execution_time"], body["end_execution_time"]) == ("09:30", "19:00")
    assert body["script"] == "kasko_v1" and body["attempt"] == 1
    assert seen[0].headers["authorization"] == "Bearer k3y"


@pytest.mark.parametrize(
    ("response", "kind", "error_type"),
    [
        (httpx.Response(422, json={"error": {"code": "invalid_phone"}}), PermanentSendError, "InvalidPhone"),
        (httpx.Response(422, json={"error": {"code": "stop_listed"}}), PermanentSendError, "StopListed"),
        (httpx.Response(400, json={"error": {"code": "what"}}), PermanentSendError, "InvalidRequest"),
        (httpx.Response(401, json={}), ChannelPaused, "AuthFailed"),
        (httpx.Response(402, json={}), ChannelPaused, "InsufficientFunds"),
        (httpx.Response(429, json={}, headers={"Retry-After": "2"}), RateLimited, "RateLimited"),
        (httpx.Response(503, text="down"), ProviderUnavailable, "ProviderUnavailable"),
        (httpx.Response(200, json={"status": "queued"}), ProviderUnavailable, "ProviderUnavailable"),
    ],
)
async def test_errors(response: httpx.Response, kind: type[Exception], error_type: str) -> None:
    with pytest.raises(kind) as caught:
        await robot(lambda r: response).deliver(CALL)
    assert getattr(caught.value, "error_type", None) == error_type


async def test_invalid_phone_needs_no_request() -> None:
    with pytest.raises(PermanentSendError) as caught:
        await robot(lambda r: httpx.Response(500)).deliver(CALL.model_copy(update={"recipient": "+7123"}))
    assert caught.value.error_type == "InvalidPhone"


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("no_answer", RobotOutcome.NO_ANSWER),
        ("busy", RobotOutcome.BUSY),
        ("agreed", RobotOutcome.AGREED),
        ("refused", RobotOutcome.REFUSED),
        ("callback_requested", RobotOutcome.CALLBACK),
        ("do_not_call", RobotOutcome.DO_NOT_CONTACT),
        ("ANSWERED", RobotOutcome.NO_ANSWER),
    ],
)
def test_parse_outcome_webhook(result: str, outcome: RobotOutcome) -> None:
    parsed = parse_outcome_webhook({"task_id": "vx-1", "client_task_id": CALL.dedup_key, "result": result})
    assert (parsed.task_id, parsed.outcome, parsed.journey_id) == ("vx-1", outcome, CALL.journey_id)


@pytest.mark.parametrize(
    "payload", [{"task_id": "1", "result": "busy"}, {"task_id": "1", "client_task_id": "k", "result": "?"}]
)
def test_parse_outcome_webhook_rejects_garbage(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_outcome_webhook(payload)


# ---- against the fake providers -------------------------------------------------------------------


async def test_gateway_dedups_and_posts_the_signed_outcome() -> None:
    received: list[tuple[bytes, str]] = []
    webhook = FastAPI()

    @webhook.post("/webhooks/robot")
    async def hook(request: Request) -> dict[str, str]:
        received.append((await request.body(), request.headers.get("x-signature", "")))
        return {}

    gateway = Gateway(
        GatewayConfig(
            robot_api_key="k3y", robot_webhook_url="http://hooks/webhooks/robot", robot_webhook_secret="rs"
        ),
        callback_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=webhook)),
    )
    gateway.robot_script["79161234567"] = [RobotOutcome.AGREED]
    provider = RobotHttpProvider(
        CONFIG.model_copy(update={"base_url": "http://gw"}), client=asgi_client(gateway)
    )
    first = await provider.deliver(CALL)
    again = await provider.deliver(CALL)  # a retry: the same client_task_id, the same task
    assert first == again and first.outcome is None
    await gateway.drain_callbacks()
    records = gateway.log.records("robot")
    assert [(r.key, r.repeat, r.deduplicated) for r in records] == [
        (CALL.dedup_key, False, False),
        (CALL.dedup_key, True, True),
    ]
    assert messages_per_key(r.model_dump() for r in records) == {("robot", CALL.dedup_key): 1}
    assert len(received) == 1
    body, signature = received[0]
    assert authentic("rs", body, signature, None)
    callback = RobotCallback.model_validate_json(body)  # the JSON our webhook service accepts
    assert (callback.message_id, callback.task_id, callback.outcome) == (
        CALL.dedup_key,
        first.message_id,
        RobotOutcome.AGREED,
    )
    parsed = parse_outcome_webhook(json.loads(body))  # and the robot's own fields
    assert (parsed.task_id, parsed.outcome) == (first.message_id, RobotOutcome.AGREED)


async def test_gateway_faults_reach_the_adapter() -> None:
    gateway = Gateway(GatewayConfig(faults=FaultConfig(error_rate=1.0)))
    provider = RobotHttpProvider(
        CONFIG.model_copy(update={"base_url": "http://gw"}), client=asgi_client(gateway)
    )
    with pytest.raises(ProviderUnavailable):
        await provider.deliver(CALL)
    gateway.configure_faults(FaultConfig(invalid_phones=[PHONE]))
    with pytest.raises(PermanentSendError) as invalid:
        await provider.deliver(CALL)
    assert invalid.value.error_type == "InvalidPhone"
    gateway.configure_faults(FaultConfig(insufficient_funds=True))
    with pytest.raises(ChannelPaused):
        await provider.deliver(CALL)
    gateway.configure_faults(FaultConfig(rate_limit_rate=1.0))
    with pytest.raises(RateLimited) as limited:
        await provider.deliver(CALL)
    assert limited.value.retry_after == 1.0
    assert gateway.log.records() == []

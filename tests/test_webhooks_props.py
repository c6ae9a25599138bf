"""Property: whatever headers and body arrive at a webhook endpoint, the answer is 2xx only when the body
is signed (or carries the bearer secret, where that source allows one) and is a valid callback naming a
running renewal journey; otherwise 4xx; never 5xx. The real app and service on SQLite, with a fake
Temporal client (a journey id it knows runs; every other id is no workflow), so it needs no server.
The body limit and the order "bounded read → signature on the raw bytes → parse" are checked here too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database
from renewals.journey_api import WORKFLOW_TYPE
from renewals.webhooks.app import MAX_BODY, create_app
from renewals.webhooks.auth import BEARER_SOURCES, sign
from renewals.webhooks.payloads import CALLBACKS
from tests.keys import TEST_CONVERTER

SECRETS = {s: f"secret-{s}" for s in (*CALLBACKS, "operators")}
KNOWN = "renewal-PROP-1-20300101"


@dataclass
class FakeClient:
    """What the webhook service asks of Temporal: describe a workflow, signal it."""

    signals: list[str] = field(default_factory=list)
    namespace: str = "default"
    identity: str = "props"
    data_converter: Any = TEST_CONVERTER

    def __post_init__(self) -> None:
        self.workflow_service = SimpleNamespace(signal_workflow_execution=self._signal)

    async def _signal(self, request: Any, retry: bool = False) -> None:
        self.signals.append(request.request_id)

    def get_workflow_handle(self, workflow_id: str, **_: Any) -> Any:
        async def describe() -> Any:
            if workflow_id != KNOWN:
                raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
            return SimpleNamespace(
                status=WorkflowExecutionStatus.RUNNING,
                workflow_type=WORKFLOW_TYPE,
                typed_search_attributes=TypedSearchAttributes.empty,  # the journey's stage, unset
            )

        return SimpleNamespace(describe=describe)


ids = st.one_of(st.text(max_size=8), st.sampled_from(["e-1", "e-2", " ", "x" * 201, "a\x00", "é"]))
payloads = st.fixed_dictionaries(
    {},
    optional={
        "event_id": ids,
        "journey_id": st.one_of(st.just(KNOWN), ids),
        "message_id": ids,
        "policy_number": ids,
        "type": st.sampled_from(["delivered", "reply", "opened", "read", "renewed", "bogus", ""]),
        "text": st.one_of(st.none(), st.text(max_size=5)),
        "task_id": st.one_of(st.none(), ids),
        "outcome": st.sampled_from(["agreed", "busy", "nope"]),
        "expires_on": st.sampled_from(["2030-01-01", "soon", None]),
    },
)
VALID: dict[str, dict[str, Any]] = {  # one well-formed callback per source, naming KNOWN
    "sms": {"type": "reply", "text": "STOP"},
    "email": {"type": "opened"},
    "vk": {"type": "read"},
    "robot": {"outcome": "agreed", "task_id": "call-1"},
    "portal": {"type": "quote_created"},
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A source and a body: often a valid callback with some fields replaced, else anything."""
    source = draw(st.sampled_from(sorted(CALLBACKS)))
    kind = draw(st.sampled_from(["valid", "mutated", "random"]))
    if kind == "random":
        return source, draw(
            st.one_of(
                payloads.map(lambda p: json.dumps(p).encode()),
                st.binary(max_size=64),
                st.sampled_from([b"", b"[]", b"null", b'{"event_id": 1}', b"{" * 50]),
            )
        )
    payload: dict[str, Any] = {"event_id": draw(st.sampled_from(["e-1", "e-2", "e-3"])), "journey_id": KNOWN}
    payload |= VALID[source]
    if kind == "mutated":
        payload |= draw(payloads)
    return source, json.dumps(payload).encode()


# how the request authenticates: (mode, extra) — the header is built from the body below
auths = st.one_of(
    st.sampled_from(["signed", "signed-upper", "bearer", "wrong-secret", "none", "bearer-wrong"]),
    st.binary(max_size=20).map(lambda raw: b"sha256=" + raw),
    st.binary(max_size=20).map(lambda raw: b"Bearer " + raw),
)


def _headers(source: str, body: bytes, auth: str | bytes) -> tuple[dict[str, Any], bool]:
    """The request headers and whether they authenticate the body."""
    secret = SECRETS[source]
    if isinstance(auth, bytes):
        name = "X-Signature" if auth.startswith(b"sha256=") else "Authorization"
        return {name: auth}, False  # random bytes: never a valid signature or the secret
    if auth == "signed":
        return {"X-Signature": sign(secret, body)}, True
    if auth == "signed-upper":
        return {"X-Signature": sign(secret, body).upper()}, True
    if auth == "bearer":
        return {"Authorization": f"Bearer {secret}"}, source in BEARER_SOURCES
    if auth == "bearer-wrong":
        return {"Authorization": "Bearer nope"}, False
    if auth == "wrong-secret":
        return {"X-Signature": sign("other", body)}, False
    return {}, False


def _names_the_running_journey(source: str, body: bytes) -> bool:
    """The oracle for the journey: a valid body that names KNOWN by journey_id (a message id or a
    policy number always resolves to nothing here: no outbox rows, no policies)."""
    try:
        callback = CALLBACKS[source].model_validate_json(body)
    except ValidationError:
        return False
    return callback.message_id is None and callback.journey_id == KNOWN


@dataclass
class Service:
    loop: asyncio.AbstractEventLoop
    client: FakeClient
    http: httpx.AsyncClient


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The app on its own event loop (hypothesis drives a synchronous test)."""
    loop = asyncio.new_event_loop()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/props.db")
    loop.run_until_complete(db.migrate())
    client = FakeClient()
    app = create_app(db, cast(Client, client), SECRETS)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks")
    try:
        yield Service(loop, client, http)
    finally:
        loop.run_until_complete(http.aclose())
        loop.run_until_complete(db.dispose())
        loop.close()


def test_body_is_bounded_and_signed_before_it_is_parsed(service: Service) -> None:
    """An unsigned caller costs at most MAX_BODY bytes and learns nothing of the schema (401, not 422)."""

    def post(body: bytes | AsyncIterator[bytes], headers: dict[str, str] | None = None) -> httpx.Response:
        return service.loop.run_until_complete(
            service.http.post("/webhooks/sms", content=body, headers=headers)
        )

    huge = b'{"event_id": "' + b"x" * (MAX_BODY + 1) + b'"}'
    assert post(huge, {"X-Signature": sign("k", huge)}).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096  # no Content-Length: counted while read

    assert post(chunks()).status_code == 413
    for body in (b"{not json", b'{"event_id": ""}', b"[]"):
        unsigned = post(body)
        assert unsigned.status_code == 401 and "event_id" not in unsigned.text
        signed = post(body, {"X-Signature": sign(SECRETS["sms"], body)})
        assert signed.status_code == 422 and "input" not in signed.json()["detail"][0]


def test_any_request_is_2xx_only_when_signed_and_valid_else_4xx(service: Service) -> None:
    loop, client, http = service.loop, service.client, service.http

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=requests(), auth=auths)
    def check(request: tuple[str, bytes], auth: str | bytes) -> None:
        source, body = request
        headers, authentic = _headers(source, body, auth)
        response = loop.run_until_complete(http.post(f"/webhooks/{source}", content=body, headers=headers))
        assert response.status_code < 500, response.text
        expected_ok = authentic and _names_the_running_journey(source, body)
        assert (200 <= response.status_code < 300) is expected_ok, (response.status_code, response.text)
        assert 400 <= response.status_code < 500 or expected_ok
        if not authentic:
            assert response.status_code == 401

    check()
    assert client.signals  # the property saw accepted callbacks too

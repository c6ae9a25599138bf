"""The codec server the Temporal UI decodes through: a round trip over HTTP with the test keys, and every
way of asking without the right (no token, a wrong one, a foreign origin) gets no plaintext."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from renewals.encryption import EncryptionCodec
from renewals.encryption.codec import ENCODING
from renewals.encryption.server import create_codec_app
from renewals.settings import Settings
from starter.codec import CodecServerRefused, codec_server
from tests.factories import CLIENT
from tests.keys import OLD_TEST_KEYRING, TEST_CONVERTER, TEST_KEYRING

TOKEN = "codec-test-token"
UI = "http://127.0.0.1:8233"
FOREIGN = "http://evil.example"
SECRETS = ("Иванов", "Петрович", "79161234567")


def client_for(
    app_token: str = TOKEN, *, local_ui: bool = False, peer: str = "127.0.0.1"
) -> httpx.AsyncClient:
    app = create_codec_app(EncryptionCodec(TEST_KEYRING), app_token, UI, local_ui=local_ui)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8081")


@pytest.fixture
async def codec() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for() as http:
        yield http


def as_json(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


async def encrypted_client() -> str:
    """What a journey's input looks like in Temporal: the sample client, encrypted (proto JSON)."""
    return as_json(await TEST_CONVERTER.encode([CLIENT]))


def headers(token: str | None = TOKEN, origin: str | None = UI) -> dict[str, str]:
    found = {"Content-Type": "application/json", "X-Namespace": "default"}
    if token is not None:
        found["Authorization"] = f"Bearer {token}"
    if origin is not None:
        found["Origin"] = origin
    return found


def assert_no_plaintext(answer: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in answer.text
        assert base64.b64encode(secret.encode()).decode()[:8] not in answer.text
    assert "payloads" not in answer.json()


async def test_decode_gives_the_ui_the_clear_payloads(codec: httpx.AsyncClient) -> None:
    answer = await codec.post("/decode", content=await encrypted_client(), headers=headers())
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    decoded = json_format.Parse(answer.content, Payloads()).payloads
    assert decoded[0].metadata["encoding"] == b"json/plain"
    [clear] = TEST_CONVERTER.payload_converter.from_payloads(decoded)
    assert clear == CLIENT
    # What the UI shows: the data, base64 in the JSON it gets back.
    assert "Иванов" in base64.b64decode(answer.json()["payloads"][0]["data"]).decode()


async def test_encode_then_decode_round_trip(codec: httpx.AsyncClient) -> None:
    clear = as_json(TEST_CONVERTER.payload_converter.to_payloads([CLIENT]))
    answer = await codec.post("/encode", content=clear, headers=headers())
    assert answer.status_code == 200
    [sealed] = json_format.Parse(answer.content, Payloads()).payloads
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata["encryption-key-id"] == TEST_KEYRING.current.encode()
    assert_no_plaintext_bytes(sealed.data)
    back = await codec.post("/decode", content=answer.content, headers=headers())
    assert TEST_CONVERTER.payload_converter.from_payloads(
        json_format.Parse(back.content, Payloads()).payloads
    ) == [CLIENT]


def assert_no_plaintext_bytes(data: bytes) -> None:
    for secret in SECRETS:
        assert secret.encode() not in data


@pytest.mark.parametrize("token", [None, "wrong-token", "", TOKEN + "x"])
async def test_without_a_valid_token_nothing_is_decoded(codec: httpx.AsyncClient, token: str | None) -> None:
    for path in ("/decode", "/encode"):
        answer = await codec.post(path, content=await encrypted_client(), headers=headers(token))
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert_no_plaintext(answer)


async def test_other_authorization_schemes_are_refused(codec: httpx.AsyncClient) -> None:
    basic = {**headers(None), "Authorization": f"Basic {TOKEN}"}
    answer = await codec.post("/decode", content=await encrypted_client(), headers=basic)
    assert answer.status_code == 401
    assert_no_plaintext(answer)


async def test_a_foreign_origin_gets_no_cors_and_no_plaintext(codec: httpx.AsyncClient) -> None:
    preflight = await codec.options(
        "/decode",
        headers={
            "Origin": FOREIGN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers
    # Even a page that holds the token (or skips the preflight) is refused by the server itself.
    answer = await codec.post("/decode", content=await encrypted_client(), headers=headers(origin=FOREIGN))
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers
    assert_no_plaintext(answer)


async def test_the_ui_origin_preflight_is_allowed(codec: httpx.AsyncClient) -> None:
    preflight = await codec.options(
        "/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization,authorization-extras",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-namespace", "authorization"} <= allowed


async def test_a_refusal_tells_the_ui_why(codec: httpx.AsyncClient) -> None:
    """The UI's own origin gets the CORS header on a 401 too, so it can show "decode failed"."""
    answer = await codec.post("/decode", content=await encrypted_client(), headers=headers(None))
    assert answer.status_code == 401 and answer.headers["access-control-allow-origin"] == UI


async def test_bad_requests_echo_nothing(codec: httpx.AsyncClient) -> None:
    garbage = await codec.post("/decode", content='{"payloads": "Иванов"}'.encode(), headers=headers())
    assert garbage.status_code == 400 and "Иванов" not in garbage.text
    form = await codec.post(
        "/decode", content=await encrypted_client(), headers={**headers(), "Content-Type": "text/plain"}
    )
    assert form.status_code == 415
    assert_no_plaintext(form)


async def test_a_payload_of_an_unknown_key_names_the_key_not_the_data() -> None:
    old = EncryptionCodec(OLD_TEST_KEYRING)
    sealed = await old.encode(TEST_CONVERTER.payload_converter.to_payloads([CLIENT]))
    async with client_for() as codec:
        answer = await codec.post("/decode", content=as_json(sealed), headers=headers())
    assert answer.status_code == 422
    assert OLD_TEST_KEYRING.current in answer.json()["detail"]
    assert_no_plaintext(answer)


async def test_development_mode_serves_the_local_ui_without_a_token() -> None:
    async with client_for(local_ui=True) as codec:
        local = await codec.post("/decode", content=await encrypted_client(), headers=headers(None))
        assert local.status_code == 200 and "payloads" in local.json()
        no_origin = await codec.post("/decode", content=await encrypted_client(), headers=headers(None, None))
        assert no_origin.status_code == 401  # a script, not the UI: the token still counts
        foreign = await codec.post(
            "/decode", content=await encrypted_client(), headers=headers(None, FOREIGN)
        )
        assert foreign.status_code == 403
    async with client_for(local_ui=True, peer="10.1.2.3") as remote:
        answer = await remote.post("/decode", content=await encrypted_client(), headers=headers(None))
        assert answer.status_code == 401
        assert_no_plaintext(answer)


def test_no_token_means_no_server_outside_development() -> None:
    with pytest.raises(ValueError):
        create_codec_app(EncryptionCodec(TEST_KEYRING), "", UI)
    with pytest.raises(CodecServerRefused, match="RENEWALS_CODEC_SERVER_TOKEN"):
        codec_server(Settings(codec_server_token=None))
    with pytest.raises(CodecServerRefused, match="loopback"):
        codec_server(Settings(), host="0.0.0.0", dev=True)
    with pytest.raises(CodecServerRefused, match="encryption keys"):
        codec_server(Settings(codec_server_token=SecretStr("t"), encryption_keys=[]))
    assert codec_server(Settings(codec_server_token=SecretStr("t"))).config.port == 8081
    assert codec_server(Settings(), dev=True).config.host == "127.0.0.1"

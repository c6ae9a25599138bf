"""Personal data in Temporal is encrypted (renewals/encryption): the codec, the keyring and its rotation,
and a whole journey whose history, fetched without the codec, holds none of the client's data."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from renewals.activity_io import SendRequest
from renewals.channels.base import SingleProvider
from renewals.db.database import Database
from renewals.encryption import (
    EncryptionCodec,
    InvalidKey,
    Keyring,
    PayloadDecryptionError,
    UnknownKey,
    dev_keyring,
    settings_converter,
)
from renewals.encryption.codec import ENCODING, KEY_ID_METADATA
from renewals.settings import Settings
from tests.factories import CLIENT, policy
from tests.harness import INTAKE, channels_with, journey_harness, msk
from tests.keys import OLD_TEST_KEY, TEST_KEY, TEST_KEYRING, payloads
from workflows.renewal import RenewalJourney

# What must never be readable in Temporal: the sample client's name, phone, e-mail and VK id.
PERSONAL = ("Иванов", "Петрович", "9161234567", "ivan@example.org", CLIENT["vk_id"])


def payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([{"client": text}])[0]


async def test_a_payload_round_trips_and_its_ciphertext_hides_the_data() -> None:
    codec = EncryptionCodec(TEST_KEYRING)
    clear = payload("Иванов Иван Петрович, +79161234567")
    [sealed] = await codec.encode([clear])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == TEST_KEYRING.current.encode()
    assert "Иванов".encode() not in sealed.data and b"9161234567" not in sealed.data
    assert await codec.decode([sealed]) == [clear]


async def test_each_encoding_draws_its_own_nonce() -> None:
    codec = EncryptionCodec(TEST_KEYRING)
    clear = payload("Иванов")
    first, second = await codec.encode([clear, clear])
    assert first.data[:12] != second.data[:12] and first.data != second.data
    assert await codec.decode([first, second]) == [clear, clear]


async def test_a_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec(TEST_KEYRING)
    [sealed] = await codec.encode([payload("Иванов")])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError, match=TEST_KEYRING.current):
        await codec.decode([tampered])
    other = Keyring.parse([OLD_TEST_KEY])
    relabelled = Payload(  # the key id is bound to the ciphertext: another id cannot claim it
        metadata={**sealed.metadata, KEY_ID_METADATA: other.current.encode()}, data=sealed.data
    )
    with pytest.raises(PayloadDecryptionError):
        await EncryptionCodec(TEST_KEYRING.rotated(other.current, other.key(other.current))).decode(
            [relabelled]
        )


async def test_an_unknown_key_id_is_refused_by_name() -> None:
    old = Keyring.parse([OLD_TEST_KEY])
    [sealed] = await EncryptionCodec(old).encode([payload("Иванов")])
    with pytest.raises(UnknownKey) as refused:
        await EncryptionCodec(TEST_KEYRING).decode([sealed])
    assert refused.value.key_id == old.current
    assert f"key id {old.current!r}, which is not configured" in str(refused.value)
    assert TEST_KEYRING.current in str(refused.value)  # what is configured, by id


async def test_rotation_keeps_old_payloads_readable_and_encrypts_new_ones_with_the_new_key() -> None:
    before = Keyring.parse([OLD_TEST_KEY])
    [old_payload] = await EncryptionCodec(before).encode([payload("Иванов")])
    new_id, new_key = TEST_KEY.split(":")
    after = before.rotated(new_id, base64.b64decode(new_key))
    assert (after.current, after.ids) == (new_id, [new_id, before.current])
    codec = EncryptionCodec(after)
    [new_payload] = await codec.encode([payload("Иванов")])
    assert new_payload.metadata[KEY_ID_METADATA] == new_id.encode()
    assert await codec.decode([old_payload, new_payload]) == [payload("Иванов")] * 2
    with pytest.raises(UnknownKey, match=before.current):
        await EncryptionCodec(after.without(before.current)).decode([old_payload])


async def test_a_payload_that_was_never_encrypted_passes_through() -> None:
    """Histories written before encryption was turned on still replay."""
    clear = payload("x")
    assert await EncryptionCodec(TEST_KEYRING).decode([clear]) == [clear]


def test_keys_come_from_settings_and_a_key_file(tmp_path: Path) -> None:
    key_id, key = OLD_TEST_KEY.split(":")
    (tmp_path / "keys.json").write_text(json.dumps([{"id": key_id, "key": key}]))
    (tmp_path / "keys.txt").write_text(f"# old keys\n{OLD_TEST_KEY}\n")
    for file in ("keys.json", "keys.txt"):
        settings = Settings(encryption_keys=[TEST_KEY], encryption_key_file=tmp_path / file)
        keyring = Keyring.from_settings(settings)
        assert (keyring.current, keyring.ids) == (TEST_KEYRING.current, [TEST_KEYRING.current, key_id])
    assert Keyring.configured(Settings(encryption_keys=[], encryption_key_file=None)) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "short:" + base64.b64encode(b"k" * 16).decode(),
            "encryption key 'short' is 16 bytes; AES-256 needs 32",
        ),
        ("bad:not base64!", "encryption key 'bad' is not valid base64"),
        (base64.b64encode(b"k" * 32).decode(), "must be written 'id:base64'"),
    ],
)
def test_a_malformed_key_is_refused_naming_its_id_never_the_key(entry: str, message: str) -> None:
    with pytest.raises(InvalidKey, match=message) as refused:
        Keyring.parse([entry])
    secret = entry.partition(":")[2] or entry
    assert secret not in str(refused.value)


def test_the_development_keyring_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = dev_keyring(tmp_path / "data")
    path = tmp_path / "data" / "encryption-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert dev_keyring(tmp_path / "data") == first
    assert repr(first) == f"Keyring(current={first.current!r}, ids=[{first.current!r}])"  # no key material
    without_keys = Settings(encryption_keys=[], data_dir=tmp_path / "data")
    assert Keyring.from_settings(without_keys) == first
    assert not (tmp_path / "ephemeral").exists()
    settings_converter(Settings(encryption_keys=[], data_dir=tmp_path / "ephemeral"), ephemeral=True)
    assert not (tmp_path / "ephemeral").exists()  # simulate: nothing persists
    remote = Settings(encryption_keys=[], data_dir=tmp_path / "data", temporal_address="temporal.prod:7233")
    with pytest.raises(InvalidKey, match="no encryption keys configured for Temporal at temporal"):
        settings_converter(remote)  # every worker made its own keyring: journeys could not be read
    assert os.environ["RENEWALS_ENCRYPTION_KEYS"]  # tests/conftest.py: every Settings() has the test key
    assert Keyring.from_settings(Settings()) == TEST_KEYRING


# ---- a whole journey ---------------------------------------------------------------------------


class RefusingSms(SingleProvider):
    """An SMS gateway whose refusal quotes the number unmasked (even so, the failure must not leak)."""

    name = "refusing"

    async def send(self, request: SendRequest) -> str:
        raise ApplicationError(
            f"the gateway refused {request.recipient}", type="InvalidPhone", non_retryable=True
        )


def leaks(raw: bytes) -> list[str]:
    """The personal strings found in raw proto bytes, as UTF-8 or JSON-escaped."""
    found = []
    for text in PERSONAL:
        forms = {text.encode(), json.dumps(text).strip('"').encode()}
        if any(form in raw for form in forms):
            found.append(text)
    return found


async def test_a_journeys_history_holds_no_personal_data_without_the_codec(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/pii.db")
    centre = policy("KASKO", number="PII-1", renewal_centre=True)  # the sample client, Иванов Иван Петрович
    async with journey_harness(tmp_path, channels_with(db, sms=RefusingSms()), db) as h:
        handle = await h.start(centre, INTAKE)
        await h.skip_to(msk(4, 5))  # past −30 (e-mail, VK, the refused SMS), the robot, −17 operator task
        status = await handle.query(RenewalJourney.status)
        await h.skip_to(msk(4, 22))
        await handle.result()
        config = h.env.client.config()
        config["data_converter"] = pydantic_data_converter
        plain = Client(**config)
        raw = await plain.get_workflow_handle(handle.id).fetch_history()
        described = await plain.get_workflow_handle(handle.id).describe()
    await db.dispose()

    # Through the codec: the journey knows its client.
    texts = " ".join(entry.text or "" for entry in status.timeline)
    assert "Иванов Иван Петрович" in texts and "+79161234567" in {e.to for e in status.timeline}
    assert any("refused +79161234567" in (e.reason or "") for e in status.timeline)

    # Without it: nothing personal anywhere in the history or the description.
    wire = b"".join(event.SerializeToString() for event in raw.events)
    assert len(raw.events) > 50
    assert leaks(wire) == [], "personal data in the raw history"
    assert leaks(raw.to_json().encode()) == []
    assert leaks(described.raw_description.SerializeToString()) == []
    found = [p for event in raw.events for p in payloads(event)]
    encrypted = [p for p in found if p.metadata.get("encoding") == ENCODING]
    clear = [p for p in found if p.metadata.get("encoding") != ENCODING]
    assert len(encrypted) > 20
    assert {p.metadata[KEY_ID_METADATA] for p in encrypted} == {TEST_KEYRING.current.encode()}
    assert clear, "search attributes stay readable (they hold no personal data)"
    assert leaks(b"".join(p.data for p in clear)) == []
    summaries = [e.user_metadata.summary for e in raw.events if e.user_metadata.HasField("summary")]
    assert len(summaries) > 5 and all(p.metadata["encoding"] == ENCODING for p in summaries)
    failures = [e for e in raw.events if e.HasField("activity_task_failed_event_attributes")]
    assert failures and all(
        e.activity_task_failed_event_attributes.failure.message == "Encoded failure" for e in failures
    )

    # The check can fail: decrypted, the same payloads hold the client's data.
    codec = EncryptionCodec(TEST_KEYRING)
    decrypted = b"".join(p.data for p in await codec.decode(encrypted))
    assert set(leaks(decrypted)) == set(PERSONAL)

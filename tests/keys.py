"""The fixed test keyring: every test environment, the stored histories and the replay test encrypt
payloads with it (test keys, published on purpose: never configure them anywhere else).

TEST_KEY is current; OLD_TEST_KEY is the key "rotated out" for the replay test of an old key.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from renewals.encryption import EncryptionCodec, Keyring, data_converter
from renewals.encryption.codec import ENCODING

TEST_KEY = "test-2027-1:Z3RNJgd9YnP7mgQSw1UHVTYvvIKogJOYPPGukeON0Rk="
OLD_TEST_KEY = "test-2026-1:Yy1/ns91vFD/pQG8j7ITgp7v6GgGYQe6GjaHYAwl2Ns="

TEST_KEYRING = Keyring.parse([TEST_KEY])
TEST_CONVERTER = data_converter(TEST_KEYRING)
OLD_TEST_KEYRING = Keyring.parse([OLD_TEST_KEY])


def payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a proto message (payloads, failures' attributes, memo, search attributes,
    user metadata), depth first."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = value.values()
        elif isinstance(value, Message):
            items = [value]
        else:  # a repeated field
            items = value
        for item in items:
            if isinstance(item, Message):
                yield from payloads(item)


async def reencrypted(history: WorkflowHistory, source: Keyring, target: Keyring | None) -> WorkflowHistory:
    """The history as if written under `target`'s current key (None: with no codec at all): every
    encrypted payload decrypted with `source` and encrypted again (the search attributes stay clear)."""
    decode = EncryptionCodec(source)
    encode = EncryptionCodec(target) if target is not None else None
    events = [type(event).FromString(event.SerializeToString()) for event in history.events]
    copy = WorkflowHistory(history.workflow_id, events)
    for event in copy.events:
        for payload in payloads(event):
            if payload.metadata.get("encoding") == ENCODING:
                [clear] = await decode.decode([payload])
                payload.CopyFrom((await encode.encode([clear]))[0] if encode else clear)
    return copy


def seal(clear: bytes) -> bytes:
    """A fixture that holds client data (even fictional), encrypted with the test key as Temporal
    payloads are: a serialized `Payload` through the `EncryptionCodec`. `unseal` reverses it."""
    import asyncio

    from renewals.encryption.codec import EncryptionCodec

    [sealed] = asyncio.run(EncryptionCodec(TEST_KEYRING).encode([Payload(data=clear)]))
    return sealed.SerializeToString()


def unseal(sealed: bytes) -> bytes:
    import asyncio

    from renewals.encryption.codec import EncryptionCodec

    payload = Payload()
    payload.ParseFromString(sealed)
    [clear] = asyncio.run(EncryptionCodec(TEST_KEYRING).decode([payload]))
    return clear.data

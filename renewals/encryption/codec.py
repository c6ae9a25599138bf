"""The Temporal payload codec: AES-256-GCM over each whole payload (the pattern of temporalio/samples-python
`encryption/`), a random 96-bit nonce per payload and the key id in the payload's metadata (bound to the
ciphertext as associated data), so a keyring with several keys decrypts across a rotation.

A payload that is not encrypted passes decode unchanged: histories written before encryption was turned
on still replay.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from renewals.encryption.keys import Keyring, UnknownKey

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12


class PayloadDecryptionError(ValueError):
    """An encrypted payload failed authentication: tampered with, or a different key under the same id."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keyring: Keyring) -> None:
        super().__init__()
        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        self._current = keyring.current.encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.keyring.current].encrypt(
            nonce, payload.SerializeToString(), self._current
        )
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKey(key_id, self._ciphers)
        try:
            clear = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"a payload encrypted with key id {key_id!r} failed authentication "
                "(tampered with, or that id names different key material here)"
            ) from None
        return Payload.FromString(clear)

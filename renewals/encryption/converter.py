"""The data converter: pydantic models as JSON, then encrypted (payloads, memo, summaries, query/signal/update
arguments and results), with failure messages and stack traces moved into the encrypted attributes."""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from renewals.encryption.codec import EncryptionCodec
from renewals.encryption.keys import InvalidKey, Keyring
from renewals.settings import Settings


def data_converter(keyring: Keyring | None) -> DataConverter:
    """The pydantic converter with the encryption codec; None: the plain pydantic converter (no codec)."""
    if keyring is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def settings_converter(
    settings: Settings, *, ephemeral: bool = False, address: str | None = None
) -> DataConverter:
    """What workers, the CLI, webhooks and the stack use: the configured keys; without any, the development
    keyring (`settings.data_dir`), or with `ephemeral` a random one that lives only in this process
    (simulate). A Temporal other than a local dev server requires configured keys: every worker and
    client must share them, which a keyring made on one machine cannot give (`address`: the one the
    client connects to, when Temporal's own environment configuration chose it)."""
    keyring = Keyring.configured(settings)
    if keyring is None and ephemeral:
        keyring = Keyring.generate("ephemeral")
    elif keyring is None:
        address = address or settings.temporal_address
        if not _local(address) or settings.temporal_api_key is not None:
            raise InvalidKey(
                f"no encryption keys configured for Temporal at {address}: set "
                "RENEWALS_ENCRYPTION_KEYS or RENEWALS_ENCRYPTION_KEY_FILE (the development keyring under "
                f"{settings.data_dir} serves only a local dev server)"
            )
        keyring = Keyring.from_settings(settings)
    return data_converter(keyring)


def _local(address: str) -> bool:
    host = address.rpartition(":")[0] or address
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")

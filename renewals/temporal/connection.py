"""How a worker or a command reaches Temporal: the dev server, a self-hosted cluster or Temporal Cloud.

Sources, later ones winning: Temporal's own environment configuration (`temporalio.envconfig`: the
`TEMPORAL_*` variables and the `temporal.toml` profile the `temporal` CLI uses), then the service's
settings (`RENEWALS_TEMPORAL_*`) that were set explicitly. TLS: an API key implies TLS (Temporal
Cloud); client certificate and key files give mTLS (self-hosted or Cloud with certificates).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.service import TLSConfig

from renewals.encryption.converter import settings_converter
from renewals.settings import Settings


async def connect(settings: Settings) -> Client:
    """A client for the configured Temporal: pydantic models as JSON, encrypted (renewals/encryption)."""
    options = connect_options(settings)
    converter = settings_converter(settings, address=options["target_host"])
    return await Client.connect(**options, data_converter=converter)


def connect_options(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `Client.connect` (without the data converter)."""
    options: dict[str, Any] = dict(
        ClientConfig.load_client_connect_config(
            profile=settings.temporal_profile,
            config_file=str(settings.temporal_config_file) if settings.temporal_config_file else None,
            override_env_vars=env,
        )
    )
    explicit = settings.model_fields_set
    if "temporal_address" in explicit or "target_host" not in options:
        options["target_host"] = settings.temporal_address
    if "temporal_namespace" in explicit or "namespace" not in options:
        options["namespace"] = settings.temporal_namespace
    if settings.temporal_api_key is not None:
        options["api_key"] = settings.temporal_api_key.get_secret_value()
        options["tls"] = True
    if settings.temporal_tls_cert is not None or settings.temporal_tls_ca is not None:
        options["tls"] = TLSConfig(
            client_cert=_read(settings.temporal_tls_cert),
            client_private_key=_read(settings.temporal_tls_key),
            server_root_ca_cert=_read(settings.temporal_tls_ca),
            domain=settings.temporal_tls_server_name,
        )
    elif settings.temporal_tls:
        options["tls"] = True
    return options


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None

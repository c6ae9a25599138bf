"""The same worker reaches the dev server, a self-hosted cluster (mTLS) or Temporal Cloud (API key)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from temporalio.service import TLSConfig

from renewals.settings import Settings
from renewals.temporal.connection import connect_options

NO_ENV: dict[str, str] = {}


def test_defaults_reach_the_local_dev_server() -> None:
    options = connect_options(Settings(), NO_ENV)
    assert options["target_host"] == "127.0.0.1:7233"
    assert options["namespace"] == "default"
    assert "tls" not in options and "api_key" not in options


def test_temporal_cloud_by_api_key_turns_tls_on() -> None:
    settings = Settings(
        temporal_address="renewals.a1b2c.tmprl.cloud:7233",
        temporal_namespace="renewals.a1b2c",
        temporal_api_key=SecretStr("key-123"),
    )
    options = connect_options(settings, NO_ENV)
    assert (options["target_host"], options["namespace"], options["api_key"], options["tls"]) == (
        "renewals.a1b2c.tmprl.cloud:7233",
        "renewals.a1b2c",
        "key-123",
        True,
    )


def test_self_hosted_cluster_with_mtls_files(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    (tmp_path / "ca.pem").write_bytes(b"CA")
    settings = Settings(
        temporal_address="temporal.internal:7233",
        temporal_tls_cert=tmp_path / "client.pem",
        temporal_tls_key=tmp_path / "client.key",
        temporal_tls_ca=tmp_path / "ca.pem",
        temporal_tls_server_name="temporal.internal",
    )
    tls = connect_options(settings, NO_ENV)["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"CERT",
        b"KEY",
        b"CA",
        "temporal.internal",
    )


def test_temporals_own_environment_configuration_is_honoured_unless_overridden() -> None:
    env = {"TEMPORAL_ADDRESS": "cluster.example:7233", "TEMPORAL_NAMESPACE": "prod"}
    assert connect_options(Settings(), env)["target_host"] == "cluster.example:7233"
    assert connect_options(Settings(), env)["namespace"] == "prod"
    explicit = Settings(temporal_address="other:7233")
    assert connect_options(explicit, env)["target_host"] == "other:7233"

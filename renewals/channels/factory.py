"""Build the channels a worker sends through, from the settings.

- `database`: the recording providers (simulate, tests): every message is a row, nothing leaves.
- `gateway`: the real adapters, pointed at the local fake providers (`python -m fake_providers`).
- `providers`: the real adapters with the configured credentials; SMS fails over along an ordered
  list of SMSC-speaking gateways (`smsc`, then `smsc_backup`, then each of `smsc_backups` in order);
  e-mail goes through the HTTP API (`email_api`) with SMTP (`smtp`) as its fallback, or through
  whichever of the two is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import SecretStr

from renewals.channels.base import Channels, Provider
from renewals.channels.email import EmailConfig, EmailProvider
from renewals.channels.email_http import EmailApiConfig, EmailApiProvider
from renewals.channels.failover import FailoverProvider
from renewals.channels.portal_http import PortalHttpClient, PortalHttpConfig
from renewals.channels.recording import DatabasePortal, RecordingMessages, ScriptedRobot
from renewals.channels.robot_http import RobotHttpConfig, RobotHttpProvider
from renewals.channels.smsc import SmscConfig, SmscProvider
from renewals.channels.vk import VkConfig, VkProvider
from renewals.db.database import Database
from renewals.models import Channel
from renewals.outbox import OutboxLedger
from renewals.settings import Settings

T = TypeVar("T")


class ChannelConfigError(ValueError):
    """A channel needed by `channels=providers` has no configuration."""


def recording_channels(db: Database, robot: ScriptedRobot | None = None) -> Channels:
    """Every channel through the recording providers: each message a database row, nothing leaves."""
    messages = RecordingMessages(db)
    return Channels(
        {
            Channel.SMS: messages,
            Channel.EMAIL: messages,
            Channel.VK: messages,
            Channel.ROBOT_CALL: robot or ScriptedRobot(db),
        },
        DatabasePortal(db),
    )


def gateway_settings(settings: Settings) -> Settings:
    """The provider configs that point every adapter at the local fake providers."""
    url = settings.gateway_url.rstrip("/")
    secret = SecretStr("sandbox")
    timeout = settings.provider_timeout_seconds
    return settings.model_copy(
        update={
            "smsc": SmscConfig(
                base_url=url, login="sandbox", password=secret, sender="AlfaStrah", timeout_seconds=timeout
            ),
            "vk": VkConfig(
                base_url=f"{url}/method", access_token=secret, group_id=1, timeout_seconds=timeout
            ),
            "smtp": EmailConfig(
                host="127.0.0.1",
                port=settings.gateway_smtp_port,
                sender_address="renewals@sandbox.test",
                start_tls=False,
                timeout_seconds=timeout,
            ),
            "robot": RobotHttpConfig(base_url=url, api_key=secret, timeout_seconds=timeout),
            "portal": PortalHttpConfig(base_url=url, token=secret, timeout_seconds=timeout),
            "email_api": EmailApiConfig(
                base_url=f"{url}/ru/transactional/api/v1",
                api_key=secret,
                sender_address="renewals@sandbox.test",
                timeout_seconds=timeout,
            )
            if settings.gateway_email == "api"
            else None,
        }
    )


def build_channels(settings: Settings, db: Database) -> Channels:
    if settings.channels == "database":
        return recording_channels(db)
    configured = gateway_settings(settings) if settings.channels == "gateway" else settings
    smsc, vk, robot, portal = (
        _required(configured.smsc, "smsc"),
        _required(configured.vk, "vk"),
        _required(configured.robot, "robot"),
        _required(configured.portal, "portal"),
    )
    backups = [*([configured.smsc_backup] if configured.smsc_backup else []), *configured.smsc_backups]
    pause_seconds = settings.channel_pause_minutes * 60
    sms = sms_provider([smsc, *backups], db, pause_seconds=pause_seconds)
    return Channels(
        {
            Channel.SMS: sms,
            Channel.VK: VkProvider(vk),
            Channel.EMAIL: email_provider(configured.email_api, configured.smtp, db, pause_seconds),
            Channel.ROBOT_CALL: RobotHttpProvider(robot),
        },
        PortalHttpClient(portal),
    )


def sms_provider(configs: Sequence[SmscConfig], db: Database, pause_seconds: float = 900.0) -> Provider:
    """One SMSC adapter, or failover over several in this order: `smsc`, `smsc-backup`,
    `smsc-backup-2`, … (the names are stored in the outbox rows, so keep the order stable)."""
    if not configs:
        raise ChannelConfigError("SMS needs at least one SMSC configuration")
    names = ["smsc", *(f"smsc-backup{'' if i == 1 else f'-{i}'}" for i in range(1, len(configs)))]
    providers = [SmscProvider(config, name=name) for config, name in zip(configs, names, strict=True)]
    if len(providers) == 1:
        return providers[0]
    return FailoverProvider(
        providers, ledger=OutboxLedger(db), name="sms-failover", pause_seconds=pause_seconds
    )


def email_provider(
    api: EmailApiConfig | None, smtp: EmailConfig | None, db: Database, pause_seconds: float = 900.0
) -> Provider:
    """The HTTP API (`unisender`) with SMTP (`smtp`) as its fallback, or whichever one is configured.

    The API first: it deduplicates by key and reports opens; SMTP takes over only when the API
    proves it did not take the message (it refuses our key, cannot be reached, answers 503), so a
    message is never in both. The names are stored in the outbox rows: keep them stable."""
    providers: list[Provider] = []
    if api is not None:
        providers.append(EmailApiProvider(api))
    if smtp is not None:
        providers.append(EmailProvider(smtp))
    if not providers:
        raise ChannelConfigError(
            "RENEWALS_CHANNELS=providers needs an e-mail provider configured: the HTTP API "
            "(RENEWALS_EMAIL_API__…) or SMTP (RENEWALS_SMTP__…), see docs/providers.md"
        )
    if len(providers) == 1:
        return providers[0]
    return FailoverProvider(
        providers, ledger=OutboxLedger(db), name="email-failover", pause_seconds=pause_seconds
    )


def _required(config: T | None, name: str) -> T:
    if config is None:
        raise ChannelConfigError(
            f"RENEWALS_CHANNELS=providers needs the {name} provider configured "
            f"(RENEWALS_{name.upper()}__…, see docs/providers.md)"
        )
    return config

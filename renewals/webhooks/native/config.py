"""The keys of the providers' own callback formats (`settings.native_callbacks`, env
`RENEWALS_NATIVE_CALLBACKS__<FIELD>`): whatever is not configured refuses every callback (401)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr


class NativeCallbacks(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # SMSC: the secret key written into the handler URL at SMSC (`…/smsc?charset=utf-8&md5=<key>`);
    # SMSC then adds the parameter `md5` (or `sha1`) with the hash of the report and this key.
    smsc_key: SecretStr | None = None
    smsc_hash: Literal["md5", "sha1"] = "md5"
    # VK Callback API: the community's id, the "secret key" and the confirmation string of its server
    # settings («Управление → Работа с API → Callback API»). `vk_group_id` None: `settings.vk.group_id`.
    vk_group_id: int | None = None
    vk_secret: SecretStr | None = None
    vk_confirmation: str | None = None
    # The robot vendor: the shared secret of its result callback (HMAC `X-Signature` or `Bearer`).
    robot_secret: SecretStr | None = None


def native_config() -> NativeCallbacks:
    """The keys from the settings — the routes' FastAPI dependency, so tests override it. The VK
    community is `settings.vk.group_id` unless `native_callbacks.vk_group_id` names it. (The settings
    import this module, hence the import here.)"""
    from renewals.settings import get_settings

    settings = get_settings()
    config = settings.native_callbacks
    if config.vk_group_id is None and settings.vk is not None:
        return config.model_copy(update={"vk_group_id": settings.vk.group_id})
    return config

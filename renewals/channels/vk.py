"""VK community messages: `messages.send`, one API call per message.

Dedup: VK drops a second `messages.send` with the same `random_id` from the same sender, so the
`random_id` is an int32 derived stably from the dedup key — a retry after a lost answer sends nothing.
The recipient is the client's VK user id (digits). The access token travels in the POST form.

There is no permission check first (`messages.isMessagesFromGroupAllowed`): `messages.send` refuses a
user who does not allow the community's messages itself (901, `NotAllowedByRecipient`), so the check
only doubled the calls — halving what VK's 20 requests a second carry (the profile of issue 14 also
had it at 9 % of the worker's time). A resumed send (an earlier attempt may have delivered) is the
same call with the same `random_id`: VK drops it if it has the message.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.errors import (
    ChannelPaused,
    ErrorType,
    ProviderUnavailable,
    RateLimited,
    answered,
    api_client,
    json_object,
)


class VkConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://api.vk.com/method"
    access_token: SecretStr  # the community's token with the `messages` scope
    group_id: int
    api_version: str = "5.199"
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    flood_retry_after_seconds: float = 300.0  # errors 9 and 29: VK gives no hint, so back off long


def vk_random_id(dedup_key: str) -> int:
    """A stable positive int32 for a dedup key (first 31 bits of its SHA-256), never 0."""
    value = int.from_bytes(hashlib.sha256(dedup_key.encode()).digest()[:4], "big") & 0x7FFFFFFF
    return value or 1


def classify_vk_error(provider: str, code: int, text: str, flood_retry_after: float = 300.0) -> Exception:
    """VK `error.error_code` → the exception the activity reacts to."""
    message = f"{provider}: error {code} ({text})"
    if code in (5, 27, 28):  # user / group / application authorization failed
        return ChannelPaused(ErrorType.AUTH_FAILED, message, provider)
    if code == 7:  # the token lacks the `messages` permission: a configuration problem
        return ChannelPaused(ErrorType.AUTH_FAILED, message, provider)
    if code == 6:  # too many requests per second
        return RateLimited(message, provider=provider, retry_after=1.0)
    if code in (9, 29):  # flood control / rate limit reached: back off much longer
        return RateLimited(message, provider=provider, retry_after=flood_retry_after)
    if code in (900, 901, 902):  # blacklisted us / no permission / privacy settings
        return PermanentSendError(ErrorType.NOT_ALLOWED_BY_RECIPIENT, message)
    if code in (113, 936):  # invalid user id / contact not found
        return PermanentSendError(ErrorType.INVALID_RECIPIENT, message)
    if code in (100, 914):  # invalid parameter / message too long: our bug, no retry fixes it
        return PermanentSendError(ErrorType.INVALID_REQUEST, message)
    return ProviderUnavailable(message, provider=provider)  # 10 internal error, 1 unknown, …


class VkProvider(SingleProvider):
    """VK community messages (VK dedups on `random_id`; there is no status query to reconcile with)."""

    def __init__(
        self,
        config: VkConfig,
        client: httpx.AsyncClient | None = None,
        name: str = "vk",
    ) -> None:
        self.config = config
        self.name = name
        self._client, self._base = api_client(config, client)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, request: SendRequest) -> str:
        user_id = request.recipient.strip()
        if not user_id.isdigit():
            raise PermanentSendError(ErrorType.INVALID_RECIPIENT, "a VK recipient must be a numeric user id")
        answer = await self._call(
            "messages.send",
            {
                "user_id": user_id,
                "random_id": str(vk_random_id(request.dedup_key)),
                "message": request.text,
            },
        )
        if isinstance(answer, list) and answer:  # the peer_ids form answers a list of per-peer results
            answer = answer[0].get("message_id") if isinstance(answer[0], dict) else answer[0]
        if not isinstance(answer, int):
            raise ProviderUnavailable(f"{self.name}: unexpected messages.send answer", provider=self.name)
        return str(answer)

    async def _call(self, method: str, params: dict[str, str]) -> Any:
        form = params | {
            "access_token": self.config.access_token.get_secret_value(),
            "v": self.config.api_version,
        }
        response = await answered(self.name, self._client.post(f"{self._base}/{method}", data=form))
        body = json_object(self.name, response)
        if "error" in body:
            err = body["error"] if isinstance(body["error"], dict) else {}
            raise classify_vk_error(
                self.name,
                int(err.get("error_code", 0)),
                str(err.get("error_msg", "")),
                self.config.flood_retry_after_seconds,
            )
        if "response" not in body:
            raise ProviderUnavailable(f"{self.name}: answer without 'response'", provider=self.name)
        return body["response"]

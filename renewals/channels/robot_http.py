"""Робот Даша: outbound calls through an HTTP call-task API in the shape of a Voximplant call list.

`POST /api/v1/call-tasks` queues one call: our `client_task_id` (the request's dedup key, one per
robot touchpoint, so a retried activity queues nothing new — the provider answers the first task
again), the phone, the script, and the daily calling window the robot must keep to in the client's
time zone. The answer is the provider's task id; the outcome arrives later at our webhook, and
`parse_outcome_webhook` turns it into (task id, `RobotOutcome`) for the journey's signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, SingleProvider
from renewals.channels.errors import (
    ErrorType,
    ProviderUnavailable,
    answered,
    api_client,
    dialable,
    json_object,
)
from renewals.journey_api import RobotOutcome

CALL_TASKS_PATH = "/api/v1/call-tasks"


class RobotHttpConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    api_key: SecretStr
    campaign_id: str = "renewals"  # the call list / scenario the robot runs
    window_start: time = time(9, 0)  # daily calling window in `timezone` (a backstop: the journey
    window_end: time = time(20, 0)  # already calls only inside the send window)
    timezone: str = "Europe/Moscow"
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0


class RobotCallOutcome(BaseModel):
    """A parsed outcome webhook: `task_id` is the provider's id (what `place_call` returned)."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    client_task_id: str  # our dedup key: "<journey id>:<touchpoint>:robot_call"
    outcome: RobotOutcome

    @property
    def journey_id(self) -> str:
        return self.client_task_id.split(":", 1)[0]


# Provider result names → RobotOutcome. "answered" without a decision (hung up during the script)
# and voicemail count as not reached, so the journey calls again as for «no answer».
_OUTCOMES: dict[str, RobotOutcome] = {
    "no_answer": RobotOutcome.NO_ANSWER,
    "answered": RobotOutcome.NO_ANSWER,
    "voicemail": RobotOutcome.NO_ANSWER,
    "failed": RobotOutcome.NO_ANSWER,
    "busy": RobotOutcome.BUSY,
    "agreed": RobotOutcome.AGREED,
    "refused": RobotOutcome.REFUSED,
    "callback": RobotOutcome.CALLBACK,
    "callback_requested": RobotOutcome.CALLBACK,
    "do_not_contact": RobotOutcome.DO_NOT_CONTACT,
    "do_not_call": RobotOutcome.DO_NOT_CONTACT,
}


def parse_outcome_webhook(payload: Mapping[str, Any]) -> RobotCallOutcome:
    """The robot's outcome webhook (JSON `{"task_id", "client_task_id", "result", …}`) → outcome.

    Raises `ValueError` for a payload without the ids or with an unknown result (answer 400).
    """
    try:
        task_id = str(payload["task_id"])
        client_task_id = str(payload["client_task_id"])
        result = str(payload["result"]).strip().lower()
    except KeyError as exc:
        raise ValueError(f"robot outcome webhook without {exc}") from None
    if result not in _OUTCOMES:
        raise ValueError(f"unknown robot call result {result!r}")
    return RobotCallOutcome(task_id=task_id, client_task_id=client_task_id, outcome=_OUTCOMES[result])


_BODY_ERRORS = {
    "invalid_phone": ErrorType.INVALID_PHONE,
    "stop_listed": ErrorType.STOP_LISTED,
    "do_not_call": ErrorType.STOP_LISTED,
    "invalid_request": ErrorType.INVALID_REQUEST,
}


class RobotHttpProvider(SingleProvider):
    """Робот Даша over HTTP: a call task per send, its outcome later by webhook (no status query).

    The request's `recipient` is the phone, `text` the script, `attempt` the call's number."""

    def __init__(
        self, config: RobotHttpConfig, client: httpx.AsyncClient | None = None, name: str = "robot"
    ) -> None:
        self.config = config
        self.name = name
        self._client, self._base = api_client(config, client)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, request: SendRequest) -> str:
        body = {
            "client_task_id": request.dedup_key,
            "campaign_id": self.config.campaign_id,
            "phone": dialable(request.recipient),
            "script": request.text,
            "attempt": request.attempt,
            "start_execution_time": self.config.window_start.strftime("%H:%M"),
            "end_execution_time": self.config.window_end.strftime("%H:%M"),
            "timezone": self.config.timezone,
        }
        answer = await self._post(CALL_TASKS_PATH, body)
        task_id = answer.get("task_id")
        if not task_id:
            raise ProviderUnavailable(f"{self.name}: answer without task_id", provider=self.name)
        return str(task_id)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}
        response = await answered(self.name, self._client.post(self._base + path, json=body, headers=headers))
        answer = json_object(self.name, response)
        if response.status_code >= 400:
            err = answer.get("error")
            code = str(err.get("code", "")) if isinstance(err, dict) else ""
            message = f"{self.name}: HTTP {response.status_code} {code}"
            if code in _BODY_ERRORS:
                raise PermanentSendError(_BODY_ERRORS[code], message)
            raise PermanentSendError(ErrorType.INVALID_REQUEST, message)
        return answer

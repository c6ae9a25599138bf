"""What the fake providers' HTTP APIs read and answer alike: form parameters, dialable numbers, the
JSON error of the robot and portal APIs, bearer tokens."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fake_providers.faults import Fault
from renewals.phones import is_valid_phone


async def form_params(request: Request) -> dict[str, str]:
    """Query and urlencoded form merged (no python-multipart needed)."""
    params = dict(request.query_params)
    if request.method == "POST":
        body = (await request.body()).decode()
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


def dialable(phone_digits: str) -> bool:
    """Whether the provider would dial these digits: read as an international number (`+` and them)."""
    return is_valid_phone("+" + phone_digits)


def http_error(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The robot's and the portal's error: `{"error": {"code": …, "message": …}}`."""
    return JSONResponse({"error": {"code": code, "message": text}}, status_code=status, headers=headers)


def http_fault(fault: Fault) -> tuple[str, Response] | None:
    """(outcome, answer) of the robot and the portal under an injected error or rate limit."""
    if fault is Fault.ERROR:
        return "error", http_error(503, "unavailable", "try later")
    if fault is Fault.RATE_LIMIT:
        return "rate_limit", http_error(429, "rate_limited", "slow down", {"Retry-After": "1"})
    return None


def bearer_ok(request: Request, expected: str | None) -> bool:
    return expected is None or request.headers.get("authorization") == f"Bearer {expected}"

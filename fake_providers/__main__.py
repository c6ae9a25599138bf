"""`python -m fake_providers --port 8900 --smtp-port 8925 --log .data/gateway.jsonl`."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from fake_providers.app import create_app
from fake_providers.config import FaultConfig, GatewayConfig
from fake_providers.gateway import Gateway
from fake_providers.smtp import SmtpSink


def build(config: GatewayConfig, host: str, smtp_port: int | None) -> FastAPI:
    """The app, with the SMTP sink started and stopped by its lifespan."""
    gateway = Gateway(config)
    app = create_app(gateway)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        sink = SmtpSink(gateway, host, smtp_port) if smtp_port is not None else None
        if sink is not None:
            await sink.start()
            a.state.smtp_port = sink.port  # the real port when 0 was asked for
        try:
            async with inner(a):
                yield
        finally:
            if sink is not None:
                await sink.stop()

    app.router.lifespan_context = lifespan
    return app


def _fields(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The parsed flags that are fields of `model` (each flag's dest is the field's name)."""
    return {name: value for name, value in vars(args).items() if name in model.model_fields}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fake_providers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--smtp-port", type=int, default=8925, help="0 picks a free port; -1 disables")
    # GatewayConfig's fields
    parser.add_argument(
        "--log", dest="log_path", metavar="LOG", type=Path, default=None, help="append-only JSONL message log"
    )
    parser.add_argument("--sms-webhook-url", default=None, help="e.g. http://127.0.0.1:8080/webhooks/sms")
    parser.add_argument("--robot-webhook-url", default=None, help="e.g. http://127.0.0.1:8080/webhooks/robot")
    # Secrets by environment, so they stay out of the process list; the flags exist for quick trials.
    parser.add_argument(
        "--sms-webhook-secret",
        default=os.environ.get("GATEWAY_SMS_WEBHOOK_SECRET"),
        help="HMAC secret of the webhook source 'sms' (default: $GATEWAY_SMS_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--robot-webhook-secret",
        default=os.environ.get("GATEWAY_ROBOT_WEBHOOK_SECRET"),
        help="HMAC secret of the webhook source 'robot' (default: $GATEWAY_ROBOT_WEBHOOK_SECRET)",
    )
    # The providers' own callback formats instead of ours (renewals/webhooks/native; issue 13).
    parser.add_argument("--callback-format", choices=["signed", "native"], default="signed")
    parser.add_argument(
        "--vk-webhook-url", default=None, help="e.g. http://127.0.0.1:8080/webhooks/native/vk"
    )
    parser.add_argument("--vk-group-id", type=int, default=1, help="the community in VK's events")
    parser.add_argument(
        "--smsc-callback-key",
        default=os.environ.get("GATEWAY_SMSC_CALLBACK_KEY"),
        help="SMSC handler key for the md5 of native reports (default: $GATEWAY_SMSC_CALLBACK_KEY)",
    )
    parser.add_argument(
        "--vk-callback-secret",
        default=os.environ.get("GATEWAY_VK_CALLBACK_SECRET"),
        help="VK Callback API secret of native events (default: $GATEWAY_VK_CALLBACK_SECRET)",
    )
    parser.add_argument(
        "--callback-delay",
        dest="callback_delay_seconds",
        metavar="CALLBACK_DELAY",
        type=float,
        default=0.0,
        help="seconds before a callback",
    )
    # FaultConfig's fields
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--rate-limit-rate", type=float, default=0.0)
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="accept, then hold the answer")
    parser.add_argument("--stall-rate", type=float, default=0.0, help="hold, then drop without accepting")
    parser.add_argument(
        "--latency",
        dest="latency_seconds",
        metavar="LATENCY",
        type=float,
        default=0.0,
        help="seconds added to every answer",
    )
    parser.add_argument(
        "--invalid-phone", dest="invalid_phones", metavar="INVALID_PHONE", action="append", default=[]
    )
    parser.add_argument("--insufficient-funds", action="store_true")
    args = parser.parse_args(argv)
    faults = FaultConfig.model_validate(_fields(args, FaultConfig))
    config = GatewayConfig.model_validate({**_fields(args, GatewayConfig), "faults": faults})
    smtp_port = None if args.smtp_port < 0 else args.smtp_port
    uvicorn.run(build(config, args.host, smtp_port), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

"""The sandbox gateway: one local process that speaks the HTTP APIs of the SMS (SMSC.ru), VK, robot
and agent-portal adapters, plus an SMTP sink, for development, tests and the benchmark.

It records every accepted message once per dedup key (a repeat gets the first answer), answers
status queries, can post delivery / robot-outcome callbacks, and injects faults on demand.
Run it with `python -m renewals.gateway --port 8900 --smtp-port 8925 --log .data/gateway.jsonl`.
"""

from renewals.gateway.app import Gateway, create_app
from renewals.gateway.config import FaultConfig, GatewayConfig
from renewals.gateway.smtp import SmtpSink
from renewals.gateway.store import MessageLog, MessageRecord

__all__ = [
    "FaultConfig",
    "Gateway",
    "GatewayConfig",
    "MessageLog",
    "MessageRecord",
    "SmtpSink",
    "create_app",
]

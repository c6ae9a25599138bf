"""The fake providers' gateway: one local process that speaks the HTTP APIs of the SMS (SMSC.ru), VK,
robot and agent-portal adapters, plus an SMTP sink, for development, tests and the benchmark.

It logs every accepted request (a repeated dedup key too, flagged, so a duplicate send shows), answers
status queries, posts signed delivery / robot-outcome callbacks to our webhook service, and injects
faults on demand.
Run it with `python -m fake_providers --port 8900 --smtp-port 8925 --log .data/gateway.jsonl`.
"""

from fake_providers.app import create_app
from fake_providers.config import FaultConfig, GatewayConfig
from fake_providers.gateway import Gateway
from fake_providers.request_log import MessageLog, MessageRecord, RequestRecord, messages_per_key
from fake_providers.smtp import SmtpSink

__all__ = [
    "FaultConfig",
    "Gateway",
    "GatewayConfig",
    "MessageLog",
    "MessageRecord",
    "RequestRecord",
    "SmtpSink",
    "create_app",
    "messages_per_key",
]

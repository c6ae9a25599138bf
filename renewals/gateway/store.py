"""The gateway's message log: one record per dedup key, appended to a JSONL file as accepted.

The file is the evidence the crash/fault tests count ("exactly one message per key"); on start the
log re-reads it, so a restarted gateway still recognises a repeat.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class MessageRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    channel: str  # sms | vk | email | robot
    key: str  # the provider-level dedup key (see docs/providers.md, "What the gateway dedups on")
    provider_id: str  # what the provider answered: SMSC id, VK message id, Message-ID, task id
    recipient: str
    text: str
    subject: str | None = None
    meta: dict[str, Any] = {}
    accepted_at: datetime


class MessageLog:
    """Thread-safe (the SMTP sink may run elsewhere); accepting is check-and-insert under a lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], MessageRecord] = {}
        self._records: list[MessageRecord] = []
        self.repeats: dict[tuple[str, str], int] = {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        record = MessageRecord.model_validate_json(line)
                        self._records.append(record)
                        self._by_key[(record.channel, record.key)] = record

    def get(self, channel: str, key: str) -> MessageRecord | None:
        with self._lock:
            return self._by_key.get((channel, key))

    def accept(
        self,
        channel: str,
        key: str,
        recipient: str,
        text: str,
        provider_id: Callable[[int], str],
        subject: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> tuple[MessageRecord, bool]:
        """Record the message unless its key is known; returns (the record, whether it is new)."""
        with self._lock:
            existing = self._by_key.get((channel, key))
            if existing is not None:
                self.repeats[(channel, key)] = self.repeats.get((channel, key), 0) + 1
                return existing, False
            seq = len(self._records) + 1
            record = MessageRecord(
                seq=seq,
                channel=channel,
                key=key,
                provider_id=provider_id(seq),
                recipient=recipient,
                text=text,
                subject=subject,
                meta=meta or {},
                accepted_at=datetime.now(UTC),
            )
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(record.model_dump_json() + "\n")
            self._records.append(record)
            self._by_key[(channel, key)] = record
            return record, True

    def records(self, channel: str | None = None, key: str | None = None) -> list[MessageRecord]:
        with self._lock:
            return [
                r
                for r in self._records
                if (channel is None or r.channel == channel) and (key is None or r.key == key)
            ]

    def find_provider_id(self, channel: str, provider_id: str) -> MessageRecord | None:
        with self._lock:
            return next(
                (r for r in self._records if r.channel == channel and r.provider_id == provider_id), None
            )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The log file as dicts: what an outside test counts messages per key from."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

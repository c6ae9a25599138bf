"""The gateway's evidence: every accepted request as one JSONL line, and every request's outcome.

The message log is what the crash/fault tests count, so it must be able to show a duplicate: every
accepted send is appended, a repeated dedup key included, as its own line with `"repeat": true`.
What a repeat means depends on the provider the gateway plays:

* SMS (SMSC) and e-mail (SMTP) do not deduplicate: a repeat is a **second message** to the client.
* VK (`random_id`) and the robot (`client_task_id`) drop a repeat: the line says `"deduplicated": true`,
  the answer is the first message's, and nothing reaches the client.

`messages_per_key` counts what reached clients; on start the log re-reads the file, so a restarted
gateway still recognises a repeat. The request log (memory only) keeps every request's outcome, the
refused and failed ones too, so a test can prove that a permanent error was not retried.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class MessageRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    channel: str  # sms | vk | email | robot
    key: str  # the provider-level dedup key: SMSC id:phone, VK random_id:user_id, Message-ID, client_task_id
    provider_id: str  # what the provider answered: SMSC id, VK message id, Message-ID, task id
    recipient: str
    text: str
    subject: str | None = None
    meta: dict[str, Any] = {}
    accepted_at: datetime
    repeat: bool = False  # the key was accepted before
    deduplicated: bool = False  # a repeat the provider dropped: nothing went out


class RequestRecord(BaseModel):
    """One request to a send-like endpoint and how the gateway answered it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    channel: str
    endpoint: str  # send | status | rcpt | data | call
    key: str | None  # the dedup key when the request carries one
    recipient: str
    outcome: str  # accepted | repeat | hang | stall | error | rate_limit | rejected:<code> | …


def _reached_client(line: Mapping[str, Any]) -> bool:
    return not line.get("deduplicated", False)


def messages_per_key(lines: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """Messages that reached a client, per (channel, dedup key): exactly-once means all are 1.

    Takes `read_jsonl` dicts (or `MessageRecord.model_dump()`s); provider-deduplicated repeats don't count.
    """
    return Counter((str(line["channel"]), str(line["key"])) for line in lines if _reached_client(line))


class MessageLog:
    """Thread-safe (the SMTP sink may run elsewhere); accepting is check-and-append under a lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], MessageRecord] = {}  # the first record of each key
        self._records: list[MessageRecord] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        record = MessageRecord.model_validate_json(line)
                        self._records.append(record)
                        self._by_key.setdefault((record.channel, record.key), record)

    def get(self, channel: str, key: str) -> MessageRecord | None:
        """The first message with this key (what a status query answers)."""
        with self._lock:
            return self._by_key.get((channel, key))

    def accept(
        self,
        channel: str,
        key: str,
        recipient: str,
        text: str,
        provider_id: Callable[[int], str],
        *,
        dedup: bool,
        subject: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> tuple[MessageRecord, bool]:
        """Append a line for this request; returns (the line, whether the key is new).

        `dedup=True` plays a provider that drops a repeat: its line keeps the first message's
        provider id and is flagged `deduplicated`. Otherwise a repeat is a new message.
        """
        with self._lock:
            first = self._by_key.get((channel, key))
            seq = len(self._records) + 1
            dropped = first is not None and dedup
            record = MessageRecord(
                seq=seq,
                channel=channel,
                key=key,
                provider_id=first.provider_id if first is not None and dedup else provider_id(seq),
                recipient=recipient,
                text=text,
                subject=subject,
                meta=meta or {},
                accepted_at=datetime.now(UTC),
                repeat=first is not None,
                deduplicated=dropped,
            )
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(record.model_dump_json() + "\n")
            self._records.append(record)
            self._by_key.setdefault((channel, key), record)
            return record, first is None

    def records(self, channel: str | None = None, key: str | None = None) -> list[MessageRecord]:
        """Every line, repeats included."""
        with self._lock:
            return [
                r
                for r in self._records
                if (channel is None or r.channel == channel) and (key is None or r.key == key)
            ]

    @property
    def repeats(self) -> dict[tuple[str, str], int]:
        """Repeat lines per (channel, key), the re-read file's included."""
        with self._lock:
            return dict(Counter((r.channel, r.key) for r in self._records if r.repeat))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: lines, distinct keys, repeats, repeats the provider dropped, messages sent."""
        with self._lock:
            records = list(self._records)
        out: dict[str, dict[str, int]] = {}
        for r in records:
            row = out.setdefault(r.channel, {"lines": 0, "keys": 0, "repeats": 0, "deduplicated": 0})
            row["lines"] += 1
            row["keys"] += not r.repeat
            row["repeats"] += r.repeat
            row["deduplicated"] += r.deduplicated
        for row in out.values():
            row["messages"] = row["lines"] - row["deduplicated"]
        return out

    def find_provider_id(self, channel: str, provider_id: str) -> MessageRecord | None:
        with self._lock:
            return next(
                (r for r in self._records if r.channel == channel and r.provider_id == provider_id), None
            )


class RequestLog:
    """Every request's outcome, in memory (the admin API and the fault tests read it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, channel: str, endpoint: str, key: str | None, recipient: str, outcome: str) -> None:
        with self._lock:
            self._records.append(
                RequestRecord(
                    seq=len(self._records) + 1,
                    channel=channel,
                    endpoint=endpoint,
                    key=key,
                    recipient=recipient,
                    outcome=outcome,
                )
            )

    def records(
        self, channel: str | None = None, key: str | None = None, recipient: str | None = None
    ) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self._records
                if (channel is None or r.channel == channel)
                and (key is None or r.key == key)
                and (recipient is None or r.recipient == recipient)
            ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The log file as dicts: what an outside test counts messages per key from. Read while the
    gateway appends, the last line may be half written: only lines ended by a newline count."""
    text = path.read_text(encoding="utf-8")
    complete = text if text.endswith("\n") else text.rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]

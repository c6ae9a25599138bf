"""Structured logs: one event per line, JSON when stderr is not a terminal (systemd's journal, a
container's log driver, a file), the familiar text line when it is.

Each JSON line has `ts`, `level`, `logger`, `message` and, inside an activity, the fields the worker
interceptor puts in `log_fields`: `journey_id`, `touchpoint`, `dedup_key`, `channel`, `activity`
(renewals/observability/interceptor.py). Personal data never goes out: inside an activity every
recipient, text and subject of its request is masked wherever it appears in the line
(`privacy.redact`), and every line, wherever it came from, has anything shaped like a phone number or
an e-mail address masked as well (the last line of defence, not the first: our own log calls mask
what they show, `privacy.mask_address`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from renewals.privacy import mask_email, mask_phone, redact

# (fields, personal values of the request being handled)
log_fields: ContextVar[tuple[dict[str, Any], tuple[str, ...]]] = ContextVar(
    "renewals_log_fields", default=({}, ())
)
_PHONE = re.compile(r"(?<![\w+])\+?[78][\s\-()]*\d{3}[\s\-()]*\d{3}[\s\-]*\d{2}[\s\-]*\d{2}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_FIELDS = ("journey_id", "touchpoint", "dedup_key", "channel", "activity")


def mask_personal(text: str, known: tuple[str, ...] = ()) -> str:
    """`text` with the known personal values masked, then any phone- or e-mail-shaped string."""
    if known:
        text = redact(text, *known)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(re.sub(r"[^\d+]", "", m.group(0))), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (a traceback is the `exc` field of the same line)."""

    def format(self, record: logging.LogRecord) -> str:
        fields, known = log_fields.get()
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_personal(record.getMessage(), known),
        }
        event.update(fields)
        workflow = record.__dict__.get("temporal_workflow")  # workflow.logger's lines: their journey
        if isinstance(workflow, dict) and "journey_id" not in event and workflow.get("workflow_id"):
            event["journey_id"] = workflow["workflow_id"]
        for name in _FIELDS:  # `extra={...}` given by the caller wins over the context
            if name in record.__dict__:
                event[name] = record.__dict__[name]
        if record.exc_info:
            event["exc"] = mask_personal(self.formatException(record.exc_info), known)
        return json.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The terminal's line: time, level, logger, message, then the journey fields if any; masked too."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields, known = log_fields.get()
        line = mask_personal(super().format(record), known)
        shown = " ".join(f"{k}={v}" for k, v in fields.items() if k in ("journey_id", "touchpoint"))
        return f"{line} [{shown}]" if shown else line


def configure_logging(
    log_format: Literal["auto", "json", "text"] = "auto", level: str = "INFO", stream: Any = None
) -> logging.Handler:
    """Replace the root logger's handlers with one writing `stream` (stderr) in `log_format`;
    "auto" is JSON unless the stream is a terminal. Returns the handler (tests read it)."""
    stream = stream if stream is not None else sys.stderr
    use_json = log_format == "json" or (log_format == "auto" and not _is_terminal(stream))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):  # a request line per provider call would drown the journal
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())

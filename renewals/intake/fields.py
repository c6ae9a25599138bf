"""Field access for one row with precise problems: each is recorded with its file, line and field
instead of raised; text is checked at the boundary against its column's length, its JSON type and,
for names that go into client texts, the NDA guard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from renewals.db.tables import AgentRow, ClientRow, PolicyRow, RegionalCentreRow
from renewals.intake.records import SourceRow
from renewals.phones import to_e164
from renewals.templates import NdaViolation, check_nda

_TRUE = {"true", "1", "yes", "y", "да", "д"}
_FALSE = {"false", "0", "no", "n", "нет", "н", ""}
# local@domain.tld: no spaces, quotes, commas or angle brackets, no empty or dotted-out parts.
EMAIL = re.compile(r"^(?!\.)(?!.*\.\.)[\w.!#$%&'*+/=?^`{|}~-]+(?<!\.)@(?:[\w-]+\.)+[^\W\d_]{2,}$")
_ID = re.compile(r"^[\w.-]{1,64}$")
VK_ID = re.compile(r"^\d{1,20}$")


def _column_length(column: Any) -> int:
    return int(column.type.length)


# Every text field no longer than the column it is stored in (PostgreSQL refuses a whole batch for one
# over-long value, where SQLite would store it).
FIELD_LENGTHS: dict[str, int] = {
    **{name: _column_length(getattr(ClientRow, name)) for name in ("last_name", "first_name", "patronymic")},
    **{name: _column_length(getattr(ClientRow, name)) for name in ("email", "vk_id")},
    **{name: _column_length(getattr(PolicyRow, name)) for name in ("number", "product_code")},
    "bank": _column_length(PolicyRow.bank_name),  # a bank's name, kept as given (its kind is derived)
    "timezone": _column_length(PolicyRow.timezone),
    "agent_id": _column_length(AgentRow.id),
    "agent_name": _column_length(AgentRow.name),
    "centre_id": _column_length(RegionalCentreRow.id),
    "centre_name": _column_length(RegionalCentreRow.name),
}
# Names that client texts quote: the NDA guard checks them at import, not at every send.
CLIENT_TEXT_FIELDS = frozenset({"last_name", "first_name", "patronymic", "agent_name", "centre_name"})


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


class RowChecker:
    """Field access for one row that records each problem instead of raising."""

    def __init__(self, row: SourceRow) -> None:
        self.row = row
        self.problems: list[Rejection] = []

    def fail(self, name: str, reason: str) -> None:
        self.problems.append(Rejection(self.row.file, self.row.line, name, reason))

    def text(self, name: str) -> str | None:
        """The field as text, checked against its column's length and, for a name that goes into
        client texts, against the NDA guard (a link or a site would make every message fail later)."""
        value = self.row.values.get(name)
        if value is None:
            return None
        if isinstance(value, (dict, list, bool)):
            what = "true/false" if isinstance(value, bool) else f"a JSON {type(value).__name__}"
            self.fail(name, f"{what} where text is expected")
            return None
        text = str(value).strip()
        limit = FIELD_LENGTHS.get(name)
        if limit is not None and len(text) > limit:
            self.fail(name, f"{len(text)} characters, longer than the {limit} the database stores")
            return None
        if name in CLIENT_TEXT_FIELDS and text:
            try:
                check_nda(name, text)
            except NdaViolation as error:
                found = str(error).partition("client text contains ")[2].partition(", which")[0]
                self.fail(
                    name, f"contains {found}: it would go into every client text, which the NDA forbids"
                )
                return None
        return text or None

    def required(self, name: str) -> str | None:
        value = self.text(name)
        if value is None and not any(problem.field == name for problem in self.problems):
            self.fail(name, "required")
        return value

    def flag(self, name: str) -> bool:
        value = self.row.values.get(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, (dict, list)):
            self.fail(name, f"a JSON {type(value).__name__} where a yes/no value is expected")
            return False
        text = (self.text(name) or "").lower()
        if text in _TRUE:
            return True
        if text not in _FALSE:
            self.fail(name, f"{value!r} is not a yes/no value (true/false, 1/0, да/нет)")
        return False

    def phone(self, name: str, *, required: bool = True) -> str | None:
        raw = self.required(name) if required else self.text(name)
        if raw is None:
            return None
        try:
            return to_e164(raw, russian=True)  # `8 916 123-45-67` → `+79161234567`
        except ValueError as error:
            self.fail(name, str(error))
            return None

    def identifier(self, name: str) -> str | None:
        value = self.required(name)
        if value is not None and not _ID.match(value):
            self.fail(name, f"{value!r} is not an id (letters, digits, '.', '_', '-'; up to 64)")
            return None
        return value

    def rate(self, name: str) -> float | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            rate = float(raw.rstrip("%").replace(",", ".")) / (100 if raw.endswith("%") else 1)
        except ValueError:
            self.fail(name, f"{raw!r} is not a number")
            return None
        if not 0.0 <= rate <= 1.0:
            self.fail(name, f"{raw!r} is not a fraction 0..1 or a percentage like 75%")
            return None
        return rate


def parse_date(raw: str) -> date:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")

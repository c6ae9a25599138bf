"""Row validation with precise errors: every problem names its file, line, field and reason.

A row is checked field by field and all its problems are reported at once, so one round of fixing
the rejects file is enough. The domain models are built only from rows that passed every check.
A reason never quotes a client's phone or e-mail in clear (`'+7916***4567' is not a valid phone
number`): reasons are printed and logged; the row itself, in the rejects file, keeps the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from renewals.intake.records import SourceRow
from renewals.models import Agent, Bank, Client, Line, Policy, Product, RegionalCentre
from renewals.phones import to_e164
from renewals.privacy import mask_email
from renewals.sendwindow import known_zone

POLICY_FIELDS = (
    "number", "product", "product_code", "bank", "expires_on", "first_prolongation_year",
    "renewal_centre", "cancelled", "last_name", "first_name", "patronymic", "phone", "email", "vk_id",
    "timezone", "agent_id", "centre_id",
)  # fmt: skip
AGENT_FIELDS = ("agent_id", "agent_name", "agent_phone", "rate_kasko", "rate_osago", "rate_ifl")
CENTRE_FIELDS = ("centre_id", "centre_name", "centre_phone")
ALL_FIELDS = frozenset({"kind", *POLICY_FIELDS, *AGENT_FIELDS, *CENTRE_FIELDS})
KINDS = ("policy", "agent", "centre")

# Policy number formats, from the seed's placeholders («№ XXX/XXXXXXXXX», «XXXXX/XXX/XXXXXX/XX»,
# «XXXXX/XXX/XXXXXX»), where X is a letter or digit. ОСАГО is a three-letter series and ten digits
# (the RSA format, e.g. «ХХХ 0123456789»). The seed shows no КАСКО number: we accept the ИФЛ shape.
_X = "[0-9A-ZА-ЯЁ]"
NUMBER_FORMATS: dict[Product, tuple[re.Pattern[str], str]] = {
    Product.OSAGO: (
        re.compile(r"^[A-ZА-ЯЁ]{3}[ /]?\d{10}$"),
        "ХХХ 0123456789 (series of 3 letters, 10 digits)",
    ),
    Product.KASKO: (re.compile(rf"^{_X}{{5}}/{_X}{{3}}/\d{{6}}/\d{{2}}$"), "XXXXX/XXX/XXXXXX/XX"),
    Product.KASKO_OSAGO: (re.compile(rf"^{_X}{{5}}/{_X}{{3}}/\d{{6}}/\d{{2}}$"), "XXXXX/XXX/XXXXXX/XX"),
    Product.IFL: (re.compile(rf"^{_X}{{5}}/{_X}{{3}}/\d{{6}}/\d{{2}}$"), "XXXXX/XXX/XXXXXX/XX"),
    Product.MORTGAGE: (re.compile(rf"^{_X}{{5}}/{_X}{{3}}/\d{{6}}$"), "XXXXX/XXX/XXXXXX"),
}
PRODUCT_ALIASES: dict[str, Product] = {
    **{p.value: p for p in Product},
    "КАСКО": Product.KASKO,
    "ОСАГО": Product.OSAGO,
    "КАСКО+ОСАГО": Product.KASKO_OSAGO,
    "КАСКО + ОСАГО": Product.KASKO_OSAGO,
    "ИФЛ": Product.IFL,
    "ИПОТЕКА": Product.MORTGAGE,
}
BANK_ALIASES: dict[str, Bank] = {
    "SBER": Bank.SBER,
    "СБЕР": Bank.SBER,
    "СБЕРБАНК": Bank.SBER,
    "OTHER": Bank.OTHER,
}
_TRUE = {"true", "1", "yes", "y", "да", "д"}
_FALSE = {"false", "0", "no", "n", "нет", "н", ""}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
_IFL_CODE = re.compile(r"^\d{3}$")
_ID = re.compile(r"^[\w.-]{1,64}$")
_NAMED_PROBLEM = re.compile(r"^([a-z_]+): (.+)$", re.S)


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class PolicyRecord:
    row: SourceRow
    policy: Policy
    cancelled: bool


@dataclass
class Validated:
    """The outcome of validating a file: good records by kind, and every rejected row's problems."""

    agents: list[tuple[SourceRow, Agent]] = field(default_factory=list)
    centres: list[tuple[SourceRow, RegionalCentre]] = field(default_factory=list)
    policies: list[PolicyRecord] = field(default_factory=list)
    rejected: list[tuple[SourceRow, list[Rejection]]] = field(default_factory=list)

    @property
    def rejections(self) -> list[Rejection]:
        return [problem for _, problems in self.rejected for problem in problems]


class _Row:
    """Field access for one row that records each problem instead of raising."""

    def __init__(self, row: SourceRow) -> None:
        self.row = row
        self.problems: list[Rejection] = []

    def fail(self, name: str, reason: str) -> None:
        self.problems.append(Rejection(self.row.file, self.row.line, name, reason))

    def text(self, name: str) -> str | None:
        value = self.row.values.get(name)
        if value is None:
            return None
        text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
        return text or None

    def required(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            self.fail(name, "required")
        return value

    def flag(self, name: str) -> bool:
        value = self.row.values.get(name)
        if isinstance(value, bool):
            return value
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


def row_kind(row: SourceRow) -> str:
    kind = str(row.values.get("kind") or "policy").strip().lower()
    return kind


def validate_rows(
    rows: list[SourceRow],
    today: date,
    known_agents: dict[str, Agent],
    known_centres: dict[str, RegionalCentre],
) -> Validated:
    """Agents and centres first (a policy may refer to one defined anywhere in the same file)."""
    result = Validated()
    agents, centres = dict(known_agents), dict(known_centres)
    policy_rows: list[SourceRow] = []
    for row in rows:
        checker = _Row(row)
        for name in row.values:
            if name not in ALL_FIELDS:
                checker.fail(name, "unknown field")
        kind = row_kind(row)
        if kind not in KINDS:
            checker.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        elif kind == "policy":
            if not checker.problems:
                policy_rows.append(row)
                continue
        elif kind == "agent":
            agent = _agent(checker)
            if agent is not None and not checker.problems:
                agents[agent.id] = agent
                result.agents.append((row, agent))
                continue
        else:
            centre = _centre(checker)
            if centre is not None and not checker.problems:
                centres[centre.id] = centre
                result.centres.append((row, centre))
                continue
        result.rejected.append((row, checker.problems))

    seen: dict[tuple[str, date], int] = {}
    for row in policy_rows:
        checker = _Row(row)
        record = _policy(checker, today, agents, centres)
        if record is not None and not checker.problems:
            term = (record.policy.number, record.policy.expires_on)
            if term in seen:
                checker.fail("number", f"duplicate of line {seen[term]} (same number and expiry)")
            else:
                seen[term] = row.line
                result.policies.append(record)
                continue
        result.rejected.append((row, checker.problems))
    result.rejected.sort(key=lambda item: item[0].line)
    return result


def _agent(r: _Row) -> Agent | None:
    agent_id, name, phone = r.identifier("agent_id"), r.required("agent_name"), r.phone("agent_phone")
    rates = {line: r.rate(f"rate_{line.value.lower()}") for line in Line}
    if agent_id is None or name is None or phone is None:
        return None
    return Agent(
        id=agent_id,
        name=name,
        phone=phone,
        renewal_rates={line: rate for line, rate in rates.items() if rate is not None},
    )


def _centre(r: _Row) -> RegionalCentre | None:
    centre_id, name, phone = r.identifier("centre_id"), r.required("centre_name"), r.phone("centre_phone")
    if centre_id is None or name is None or phone is None:
        return None
    return RegionalCentre(id=centre_id, name=name, phone=phone)


def _product(r: _Row) -> Product | None:
    raw = r.required("product")
    if raw is None:
        return None
    product = PRODUCT_ALIASES.get(raw.upper())
    if product is None:
        r.fail("product", f"{raw!r} is not a product ({', '.join(p.value for p in Product)})")
    return product


def _product_details(r: _Row, product: Product | None) -> dict[str, Any]:
    """The policy's `product_code` and `bank`, which only some products have."""
    code, bank_raw = r.text("product_code"), r.text("bank")
    bank: Bank | None = None
    if product is Product.IFL:
        if code is None:
            r.fail("product_code", "an IFL policy needs its product code (e.g. 305, 354)")
        elif not _IFL_CODE.match(code):
            r.fail("product_code", f"{code!r} is not an IFL product code (three digits, e.g. 305)")
    elif code is not None and product is not None:
        r.fail("product_code", f"a product code applies to IFL only, not to {product.value}")
    if product is Product.MORTGAGE:
        if bank_raw is None:
            r.fail("bank", "a MORTGAGE policy needs its bank (SBER or OTHER)")
        else:
            bank = BANK_ALIASES.get(bank_raw.upper())
            if bank is None:
                r.fail("bank", f"{bank_raw!r} is not a bank (SBER or OTHER)")
    elif bank_raw is not None and product is not None:
        r.fail("bank", f"a bank applies to MORTGAGE only, not to {product.value}")
    return {"product_code": code, "bank": bank}


def _number(r: _Row, product: Product | None) -> str | None:
    number = r.required("number")
    if number is None or product is None:
        return number
    pattern, shape = NUMBER_FORMATS[product]
    if not pattern.match(number.upper()):
        r.fail("number", f"{number!r} is not a {product.value} policy number ({shape})")
        return None
    return number.upper()


def _expiry(r: _Row, today: date) -> date | None:
    raw = r.required("expires_on")
    if raw is None:
        return None
    try:
        expires_on = parse_date(raw)
    except ValueError as error:
        r.fail("expires_on", str(error))
        return None
    if expires_on < today:
        r.fail("expires_on", f"{expires_on} is in the past (today is {today})")
        return None
    return expires_on


def _client(r: _Row) -> Client | None:
    last, first = r.required("last_name"), r.required("first_name")
    phone = r.phone("phone")
    email = r.text("email")
    if email is not None and not _EMAIL.match(email):
        r.fail("email", f"{mask_email(email)!r} is not an e-mail address")
    timezone = r.text("timezone") or "Europe/Moscow"
    try:
        known_zone(timezone)
    except ValueError:
        r.fail("timezone", f"{timezone!r} is not a time zone (e.g. Europe/Moscow, Asia/Novosibirsk)")
    if last is None or first is None or phone is None or r.problems:
        return None
    return Client(
        last_name=last,
        first_name=first,
        patronymic=r.text("patronymic"),
        phone=phone,
        email=email,
        vk_id=r.text("vk_id"),
        timezone=timezone,
    )


def _policy(
    r: _Row, today: date, agents: dict[str, Agent], centres: dict[str, RegionalCentre]
) -> PolicyRecord | None:
    product = _product(r)
    fields: dict[str, Any] = {
        "product": product,
        **_product_details(r, product),
        "number": _number(r, product),
        "expires_on": _expiry(r, today),
        "first_prolongation_year": r.flag("first_prolongation_year"),
        "renewal_centre": r.flag("renewal_centre"),
    }
    cancelled = r.flag("cancelled")
    client = _client(r)
    agent_id, centre_id = r.required("agent_id"), r.text("centre_id")
    agent = agents.get(agent_id) if agent_id else None
    if agent_id is not None and agent is None:
        r.fail("agent_id", f"unknown agent {agent_id!r} (import the agent first, or add an agent row)")
    centre = centres.get(centre_id) if centre_id else None
    if centre_id is not None and centre is None:
        r.fail("centre_id", f"unknown regional centre {centre_id!r} (import it first, or add a centre row)")
    if fields["renewal_centre"] and centre_id is None:
        r.fail("centre_id", "a renewal-centre client needs its regional centre")
    if r.problems or None in (product, fields["number"], fields["expires_on"], client, agent):
        return None
    try:
        policy = Policy.model_validate(fields | {"client": client, "agent": agent, "regional_centre": centre})
    except ValidationError as error:
        for problem in error.errors():
            field_name = ".".join(str(part) for part in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            named = _NAMED_PROBLEM.match(message)
            if not field_name and named:  # model-level rules say "field: reason"
                field_name, message = named.group(1), named.group(2)
            r.fail(field_name or "row", message)
        return None
    return PolicyRecord(r.row, policy, cancelled)


def unreadable_rejection(row: SourceRow) -> Rejection:
    reason: Any = row.extra.get("reason", "unreadable")
    return Rejection(row.file, row.line, "row", str(reason))

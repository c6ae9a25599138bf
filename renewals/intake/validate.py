"""Row validation with precise errors: every problem names its file, line, field and reason.

A row is checked field by field and all its problems are reported at once, so one round of fixing
the rejects file is enough. The domain models are built only from rows that passed every check.
A reason never quotes a client's phone or e-mail in clear (`'+7916***4567' is not a valid phone
number`): reasons are printed and logged; the row itself, in the rejects file, keeps the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError

from renewals.intake.fields import EMAIL, VK_ID, Rejection, RowChecker, parse_date
from renewals.intake.records import SourceRow
from renewals.models import Agent, Client, Line, Policy, Product, RegionalCentre, normal_policy_number
from renewals.phones import InvalidPhone, to_e164
from renewals.privacy import mask_email, mask_vk
from renewals.sendwindow import known_zone

_Row = RowChecker

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
_IFL_CODE = re.compile(r"^\d{3}$")
_NAMED_PROBLEM = re.compile(r"^([a-z_]+): (.+)$", re.S)


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


def row_kind(row: SourceRow) -> str:
    kind = str(row.values.get("kind") or "policy").strip().lower()
    return kind


class Validator:
    """Validation in two streaming passes over a file, so memory does not grow with the rows: first the
    reference rows (agents and centres, which a policy anywhere in the file may refer to), then the
    policies, a batch at a time. Across batches only the keys of the duplicate and one-client checks
    are kept, never the rows."""

    def __init__(self, today: date, known_agents: dict[str, Agent], known_centres: dict[str, RegionalCentre]):
        self.today = today
        self.agents, self.centres = dict(known_agents), dict(known_centres)
        self._agent_lines: dict[str, int] = {}
        self._centre_lines: dict[str, int] = {}
        self._terms: dict[
            tuple[str, date], tuple[int, str]
        ] = {}  # (number, expiry) → (line, number as given)
        self._people: dict[
            tuple[str, str, str], tuple[int, tuple[Any, ...]]
        ] = {}  # client identity → details
        self.accepted_agents: list[tuple[SourceRow, Agent]] = []  # this file's, in the first pass
        self.accepted_centres: list[tuple[SourceRow, RegionalCentre]] = []

    def references(self, rows: Iterable[SourceRow]) -> Validated:
        """Every row but a well-formed policy row: agents and centres in, the rest rejected."""
        result = Validated()
        for row in rows:
            problems = self.first_pass(row)
            if problems:
                result.rejected.append((row, problems))
        return result

    def first_pass(self, row: SourceRow) -> list[Rejection]:
        """The row's problems, if any; an agent or centre is taken in, a policy row waits for pass two."""
        checker = _Row(row)
        for name in row.values:
            if name not in ALL_FIELDS:
                checker.fail(name, "unknown field")
        kind = row_kind(row)
        if kind not in KINDS:
            checker.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        elif kind == "policy":
            return checker.problems
        elif kind == "agent":
            agent = _agent(checker)
            if agent is not None and not checker.problems and self._first(checker, "agent_id", agent.id):
                self.agents[agent.id] = agent
                self.accepted_agents.append((row, agent))
                return []
        else:
            centre = _centre(checker)
            if centre is not None and not checker.problems and self._first(checker, "centre_id", centre.id):
                self.centres[centre.id] = centre
                self.accepted_centres.append((row, centre))
                return []
        return checker.problems

    def is_policy(self, row: SourceRow) -> bool:
        """A row for the second pass: a policy row the first pass found no problem with."""
        return row_kind(row) == "policy" and all(name in ALL_FIELDS for name in row.values)

    def policies(self, rows: Iterable[SourceRow]) -> Validated:
        result = Validated()
        for row in rows:
            checker = _Row(row)
            record = _policy(checker, self.today, self.agents, self.centres)
            if record is not None and not checker.problems:
                term = (record.policy.number, record.policy.expires_on)  # the number is in normal form
                given = str(row.values.get("number", "")).strip()
                first = self._terms.get(term)
                person = _person(record.policy.client)
                same_person = self._people.get(person)
                if first is not None:
                    checker.fail("number", _duplicate(first, given))
                elif same_person is not None and same_person[1] != _details(record.policy.client):
                    conflict = _client_conflict(same_person[1], record.policy.client, same_person[0])
                    checker.fail("client", conflict)
                else:
                    self._terms[term] = (row.line, given)
                    self._people.setdefault(person, (row.line, _details(record.policy.client)))
                    result.policies.append(record)
                    continue
            result.rejected.append((row, checker.problems))
        return result

    def _first(self, r: _Row, name: str, key: str) -> bool:
        """An agent or centre id defined once per file: a repeat would silently replace the first."""
        lines = self._agent_lines if name == "agent_id" else self._centre_lines
        if key in lines:
            r.fail(name, f"{key!r} repeated: already defined on line {lines[key]}")
            return False
        lines[key] = r.row.line
        return True


def validate_rows(
    rows: list[SourceRow],
    today: date,
    known_agents: dict[str, Agent],
    known_centres: dict[str, RegionalCentre],
) -> Validated:
    """Both passes over rows in memory (agents and centres first: a policy may refer to one defined
    anywhere in the same file)."""
    validator = Validator(today, known_agents, known_centres)
    result = validator.references(rows)
    rejected_lines = {row.line for row, _ in result.rejected}
    policies = validator.policies(r for r in rows if r.line not in rejected_lines and validator.is_policy(r))
    result.agents, result.centres = validator.accepted_agents, validator.accepted_centres
    result.policies = policies.policies
    result.rejected = sorted(result.rejected + policies.rejected, key=lambda item: item[0].line)
    return result


def _person(client: Client) -> tuple[str, str, str]:
    return (client.phone, client.last_name, client.first_name)


CLIENT_DETAILS = ("patronymic", "email", "vk_id")  # a time zone is the policy term's own


def _details(client: Client) -> tuple[Any, ...]:
    return tuple(getattr(client, name) for name in CLIENT_DETAILS)


def _client_conflict(first: tuple[Any, ...], this: Client, line: int) -> str:
    """One person (phone, surname, name) is one client row: their policies share its details, so two
    rows giving different ones would overwrite each other (a time zone, an e-mail)."""
    fields = [name for name, value in zip(CLIENT_DETAILS, first, strict=True) if getattr(this, name) != value]
    return (
        f"the same client (phone, last and first name) as line {line} with a different {', '.join(fields)}: "
        "give one person's policies the same details"
    )


def _duplicate(first: tuple[int, str], given: str) -> str:
    same = f"duplicate of line {first[0]} (same number and expiry)"
    a, b = first[1], given
    if a == b:
        return same
    return (
        f"look-alike {same}: {b!r} and {a!r} differ only in spaces, slashes, case or "
        "Latin/Cyrillic look-alike letters"
    )


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
    code, bank = r.text("product_code"), r.text("bank")
    if product is Product.IFL:
        if code is None:
            r.fail("product_code", "an IFL policy needs its product code (e.g. 305, 354)")
        elif not _IFL_CODE.match(code):
            r.fail("product_code", f"{code!r} is not an IFL product code (three digits, e.g. 305)")
    elif code is not None and product is not None:
        r.fail("product_code", f"a product code applies to IFL only, not to {product.value}")
    # Any bank's name is a bank: the policy model tells Сбер from the others (`bank_of`) and keeps
    # the name as given; `SBER` and `OTHER` are codes.
    if product is Product.MORTGAGE:
        if bank is None and not any(problem.field == "bank" for problem in r.problems):
            r.fail("bank", "a MORTGAGE policy needs its bank (e.g. «ПАО Сбербанк», «ВТБ», or SBER / OTHER)")
    elif bank is not None and product is not None:
        r.fail("bank", f"a bank applies to MORTGAGE only, not to {product.value}")
    return {"product_code": code, "bank": bank}


def _number(r: _Row, product: Product | None) -> str | None:
    number = r.required("number")
    if number is None or product is None:
        return number
    pattern, shape = NUMBER_FORMATS[product]
    normal = normal_policy_number(number)
    if not pattern.match(normal):
        r.fail("number", f"{number!r} is not a {product.value} policy number ({shape})")
        return None
    return normal


def _expiry(r: _Row, today: date) -> date | None:
    raw = r.required("expires_on")
    if raw is None:
        return None
    try:
        expires_on = parse_date(raw)
    except ValueError as error:
        r.fail("expires_on", str(error))
        return None
    past = past_expiry(expires_on, today)
    if past is not None:
        r.fail("expires_on", past)
        return None
    return expires_on


def past_expiry(expires_on: date, today: date, whose: str | None = None) -> str | None:
    """Why a term whose cover has already ended starts no journey (it would only lapse at once), or
    None. The last day of cover is still covered. `whose`: what today is (`renewals simulate`: the
    scenario's `now` in the client's zone)."""
    if expires_on < today:
        return f"{expires_on} is in the past ({whose or f'today is {today}'})"
    return None


def email_problem(email: str) -> str | None:
    if not EMAIL.match(email):
        return f"{mask_email(email)!r} is not an e-mail address"
    return None


def vk_problem(vk_id: str) -> str | None:
    if not VK_ID.match(vk_id):
        return f"{mask_vk(vk_id)!r} is not a VK user id (digits, e.g. 123456789)"
    return None


def contact_problems(client: Client) -> list[tuple[str, str]]:
    """(field, reason) for each of a whole client's addresses that intake would refuse in a row: a
    phone that is not a valid Russian number, an e-mail address or a VK id that is not one. For input
    that arrives as models, not rows (`renewals simulate`): a journey with such an address would
    only fail its sends. Reasons quote the values masked."""
    problems: list[tuple[str, str]] = []
    try:
        to_e164(client.phone, russian=True)
    except InvalidPhone as error:
        problems.append(("phone", str(error)))
    if client.email is not None and (problem := email_problem(client.email)) is not None:
        problems.append(("email", problem))
    if client.vk_id is not None and (problem := vk_problem(client.vk_id)) is not None:
        problems.append(("vk_id", problem))
    return problems


def _client(r: _Row) -> Client | None:
    last, first = r.required("last_name"), r.required("first_name")
    phone = r.phone("phone")
    email, vk_id = r.text("email"), r.text("vk_id")
    if email is not None and (problem := email_problem(email)) is not None:
        r.fail("email", problem)
    if vk_id is not None and (problem := vk_problem(vk_id)) is not None:
        r.fail("vk_id", problem)
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
        vk_id=vk_id,
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
    return Rejection(row.file, row.line, "row", row.unreadable or "unreadable")

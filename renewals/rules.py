"""The journey rules, as data: this module reads like the seed's table.

Each row says: for which segment and products, on which day relative to the policy's last day of
cover, through which channel, with which text, and under which condition. The workflow interprets
these rows; it holds no product knowledge of its own.

Segments:
- BASE: «Базовое информирование любых клиентов канала Агенты и Брокеры» — SMS with the agent's phone,
  suppressed for agents who meet their renewal norms (the agent-performance gate).
- RENEWAL_CENTRE: «Информирование клиентов агентов при поддержке Центров Возобновления» — КАСКО and/or
  ОСАГО clients supported by a renewal centre; since 12.12.2023 this journey replaces base informing
  for them (they would otherwise get two SMS at −30 and at −5).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from renewals.models import Bank, Channel, Line, Policy, Product


class Segment(StrEnum):
    BASE = "base"
    RENEWAL_CENTRE = "renewal_centre"


class Condition(StrEnum):
    """When a row's message goes out; checked at the moment it is due, never earlier."""

    ALWAYS = "always"
    FIRST_PROLONGATION_YEAR = "first_prolongation_year"  # «ТОЛЬКО по Клиентам 1-го года пролонгации»
    NO_DRAFT_QUOTE_OR_PAYMENT = "no_draft_quote_or_payment"  # «отсутствия Проекта, котировки / оплаты»
    NO_DRAFT_OR_PAYMENT = "no_draft_or_payment"  # «отсутствии проекта договора и поступившего платежа»
    NOT_ENGAGED = "not_engaged"  # «не открыл письмо/уведомление в VK и не ответил на sms», no contact yet
    NO_OPERATOR_TASK = "no_operator_task"  # the robot has not already handed the client to an operator


@dataclass(frozen=True)
class Products:
    """Which policies a row is for: products, and where the seed narrows it, codes or banks."""

    products: frozenset[Product]
    product_codes: frozenset[str] | None = None
    banks: frozenset[Bank] | None = None

    def match(self, policy: Policy) -> bool:
        if policy.product not in self.products:
            return False
        if self.product_codes is not None and policy.product_code not in self.product_codes:
            return False
        return self.banks is None or policy.bank in self.banks


@dataclass(frozen=True)
class Rule:
    segment: Segment
    products: Products
    day: int  # relative to the last day of cover: −45 is 45 calendar days before it
    channel: Channel
    template: str
    condition: Condition = Condition.ALWAYS
    until_day: int | None = None  # a daily series from `day` up to, not including, `until_day`


KASKO_ANY = Products(frozenset({Product.KASKO, Product.KASKO_OSAGO}))
OSAGO_STANDALONE = Products(frozenset({Product.OSAGO}))
IFL_305_354 = Products(frozenset({Product.IFL}), product_codes=frozenset({"305", "354"}))
MORTGAGE_SBER = Products(frozenset({Product.MORTGAGE}), banks=frozenset({Bank.SBER}))
MORTGAGE_OTHER = Products(frozenset({Product.MORTGAGE}), banks=frozenset({Bank.OTHER}))
MORTGAGE_ANY = Products(frozenset({Product.MORTGAGE}))
KASKO_AND_OR_OSAGO = Products(frozenset({Product.KASKO, Product.KASKO_OSAGO, Product.OSAGO}))

B, C = Segment.BASE, Segment.RENEWAL_CENTRE
SMS, EMAIL, VK, ROBOT, OPERATOR = (
    Channel.SMS,
    Channel.EMAIL,
    Channel.VK,
    Channel.ROBOT_CALL,
    Channel.OPERATOR_TASK,
)

RULES: tuple[Rule, ...] = (
    # segment  products          day  channel   template                condition
    Rule(B, KASKO_ANY,          -45, SMS,      "base_kasko_45"),
    Rule(B, KASKO_ANY,           -5, SMS,      "base_kasko_5",         Condition.NO_DRAFT_QUOTE_OR_PAYMENT),
    Rule(B, OSAGO_STANDALONE,   -30, SMS,      "base_osago_30",        Condition.FIRST_PROLONGATION_YEAR),
    Rule(B, OSAGO_STANDALONE,    -5, SMS,      "base_osago_5",         Condition.NO_DRAFT_QUOTE_OR_PAYMENT),
    Rule(B, IFL_305_354,        -30, SMS,      "base_ifl_30"),
    Rule(B, MORTGAGE_OTHER,     -30, SMS,      "base_mortgage_30"),
    Rule(B, MORTGAGE_SBER,      -45, SMS,      "base_mortgage_sber_45"),
    Rule(B, MORTGAGE_ANY,        -5, SMS,      "base_mortgage_5",      Condition.NO_DRAFT_QUOTE_OR_PAYMENT),
    Rule(C, KASKO_AND_OR_OSAGO, -30, EMAIL,    "centre_email_30"),
    Rule(C, KASKO_AND_OR_OSAGO, -30, VK,       "centre_vk_30"),
    Rule(C, KASKO_AND_OR_OSAGO, -30, SMS,      "centre_sms_30"),
    Rule(C, KASKO_AND_OR_OSAGO, -29, ROBOT,    "robot_dasha",          Condition.NOT_ENGAGED, until_day=-17),
    Rule(C, KASKO_AND_OR_OSAGO, -17, EMAIL,    "centre_email_17"),
    Rule(C, KASKO_AND_OR_OSAGO, -17, OPERATOR, "operator_call",        Condition.NO_OPERATOR_TASK),
    Rule(C, KASKO_AND_OR_OSAGO,  -5, SMS,      "centre_sms_5",         Condition.NO_DRAFT_OR_PAYMENT),
)  # fmt: skip

OPERATOR_RULE = next(rule for rule in RULES if rule.channel is Channel.OPERATOR_TASK)

# The agent-performance gate: «КАСКО, ОСАГО – 75%+; ИФЛ – 80%+». An agent who meets the norm of
# every line a policy belongs to has the company's base SMS for that policy suppressed.
RENEWAL_NORMS: dict[Line, float] = {Line.KASKO: 0.75, Line.OSAGO: 0.75, Line.IFL: 0.80}
GATED_SEGMENTS = frozenset({Segment.BASE})
LINES_OF_PRODUCT: dict[Product, tuple[Line, ...]] = {
    Product.KASKO: (Line.KASKO,),
    Product.KASKO_OSAGO: (Line.KASKO, Line.OSAGO),
    Product.OSAGO: (Line.OSAGO,),
    Product.IFL: (Line.IFL,),
    Product.MORTGAGE: (),  # the seed states no norm for mortgage: its clients are always informed
}


@dataclass(frozen=True)
class Touchpoint:
    """One due item of a journey: a rule on one day (a daily series yields one per day)."""

    rule: Rule
    day: int

    @property
    def key(self) -> str:
        """Stable within a journey; with the journey id it is the idempotency key of the send."""
        return f"d{self.day}-{self.rule.channel.value}"


def segment_of(policy: Policy) -> Segment:
    if policy.renewal_centre and KASKO_AND_OR_OSAGO.match(policy):
        return Segment.RENEWAL_CENTRE
    return Segment.BASE


def touchpoints_for(policy: Policy) -> list[Touchpoint]:
    """Every touchpoint the rules give this policy, earliest day first, in the table's order."""
    segment = segment_of(policy)
    points = [
        Touchpoint(rule, day)
        for rule in RULES
        if rule.segment is segment and rule.products.match(policy)
        for day in range(rule.day, rule.until_day if rule.until_day is not None else rule.day + 1)
    ]
    return sorted(points, key=lambda tp: tp.day)  # stable: same-day rows keep the table's order


def gate_reason(policy: Policy, segment: Segment) -> str | None:
    """Why the agent-performance gate suppresses this policy's company SMS, or None if it does not."""
    if segment not in GATED_SEGMENTS:
        return None
    lines = LINES_OF_PRODUCT[policy.product]
    if not lines:
        return None
    rates = policy.agent.renewal_rates
    if all(rates.get(line, 0.0) >= RENEWAL_NORMS[line] for line in lines):
        detail = ", ".join(f"{line} {rates[line]:.0%} ≥ {RENEWAL_NORMS[line]:.0%}" for line in lines)
        return f"agent_meets_renewal_norms ({detail})"
    return None

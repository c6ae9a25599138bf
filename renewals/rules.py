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

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from renewals.journey_api import ROBOT_CONTACTS, EventType, Holdout, OperatorOutcome, RobotOutcome, Stage
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
# Conditions that need the portal's view (Альфа-Полис: «Проект», «котировка», «оплата») when due.
PORTAL_CONDITIONS = frozenset({Condition.NO_DRAFT_QUOTE_OR_PAYMENT, Condition.NO_DRAFT_OR_PAYMENT})

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


# ---- what the journey does around the table ---------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the journey knows when a touchpoint comes due (the portal already asked, if needed)."""

    first_prolongation_year: bool
    draft: bool
    quote: bool
    engaged_by: EventType | None  # the first e-mail opened / VK read / SMS reply
    operator_task_opened: bool


def unmet(condition: Condition, facts: Facts) -> str | None:
    """Why a row's condition holds its touchpoint back, or None when it lets it go out."""
    if condition is Condition.FIRST_PROLONGATION_YEAR and not facts.first_prolongation_year:
        return "not_first_prolongation_year"
    if condition in PORTAL_CONDITIONS and facts.draft:
        return "draft_exists"
    if condition is Condition.NO_DRAFT_QUOTE_OR_PAYMENT and facts.quote:
        return "quote_exists"
    if condition is Condition.NOT_ENGAGED and facts.engaged_by is not None:
        return f"client_engaged ({facts.engaged_by.value})"
    if condition is Condition.NO_OPERATOR_TASK and facts.operator_task_opened:
        return "operator_task_already_opened"
    return None


# A touchpoint whose address the client does not have is suppressed with this reason.
MISSING_ADDRESS = {Channel.EMAIL: "no_email_address", Channel.VK: "no_vk_id", Channel.SMS: "no_phone"}

# Stages only move forward: a −17 e-mail after an operator hand-off does not make it "informing".
PROGRESS = (Stage.SCHEDULED, Stage.INFORMING, Stage.ROBOT_CALLING, Stage.OPERATOR, Stage.FINAL_REMINDER)


def stage_after(touchpoint: Touchpoint) -> Stage:
    """The stage a touchpoint that went out leads to."""
    if touchpoint.rule.channel is Channel.ROBOT_CALL:
        return Stage.ROBOT_CALLING
    if touchpoint.rule.channel is Channel.OPERATOR_TASK:
        return Stage.OPERATOR
    if touchpoint.day == -5:
        return Stage.FINAL_REMINDER
    return Stage.INFORMING


# Events that end the journey, and the stage they end it in.
ENDING_EVENTS = {
    EventType.PAYMENT_RECEIVED: Stage.PAID,
    EventType.RENEWED: Stage.RENEWED,
    EventType.OPT_OUT: Stage.OPTED_OUT,
    EventType.POLICY_CANCELLED: Stage.CANCELLED,
}


# A listed address of one channel only — an e-mail (unsubscribed, bounced, marked spam), a VK id (the
# client forbade the community's messages) — stops that channel; a listed phone is the client's own
# opt-out (a STOP, a do-not-contact told to Робот Даша or an operator) and ends the journey.
CHANNEL_ONLY_ADDRESSES = frozenset({Channel.EMAIL, Channel.VK})


def opt_out_ends_journey(channel: Channel) -> bool:
    return channel not in CHANNEL_ONLY_ADDRESSES


def opted_out_at_send(channel: Channel) -> str:
    """Why the journey ends when the send finds the client's address on the do-not-contact list."""
    if channel is Channel.ROBOT_CALL:
        return "the phone is on the do-not-contact list"
    return "the address is on the do-not-contact list"


# ---- Робот Даша and the renewal centre's operators ------------------------------------------------

# The operator task's reasons: the text the operator sees first.
OPERATOR_AT_17 = "Робот Даша прекратил обзвон (−17)"
OPERATOR_AT_LATE_INTAKE = "поступил после −17: Робот Даша не звонил"
ROBOT_DO_NOT_CONTACT = "do-not-contact told to Робот Даша"


def robot_handoff(outcome: RobotOutcome) -> str | None:
    """«отклик клиента на голосовой звонок Робота обрабатывается по стандартной схеме с сохранением
    агента»: a contact (agreed, refused, a callback asked for) stops the calls and hands the client
    to an operator at once, for this reason. None: no contact, the series goes on."""
    if outcome in ROBOT_CONTACTS:
        return f"отклик на звонок Робота Даши: {outcome.value}"
    return None


def robot_series_stops(error_type: str | None, permanent: bool) -> bool:
    """After a failed call: a number the provider refuses stops the series; a day the provider could
    not serve (calling hours over, an outage) does not: Робот Даша tries again tomorrow."""
    return permanent and error_type != "CallingWindowClosed"


# An operator's outcome that ends the journey (the agent stays on the renewal on every path).
OPERATOR_ENDINGS = {
    OperatorOutcome.REFUSED: (Stage.REFUSED, "the client refused the renewal to an operator"),
    OperatorOutcome.DO_NOT_CONTACT: (Stage.OPTED_OUT, "do-not-contact told to an operator"),
}
KEEPS_TASK_OPEN = frozenset({OperatorOutcome.CALLBACK})  # «перезвонить»: the real outcome comes later


class LateIntake(StrEnum):
    """What a touchpoint whose day passed before the journey started becomes."""

    OPERATOR_NOW = "operator_now"  # the −17 operator task is internal: still opened, at intake
    NOTE = "note"  # suppressed as `day_passed_before_intake` (a daily series is noted once)
    SKIP = "skip"  # a later day of a daily series already noted


def late_intake(touchpoint: Touchpoint) -> LateIntake:
    if touchpoint.rule.channel is Channel.OPERATOR_TASK:
        return LateIntake.OPERATOR_NOW
    return LateIntake.NOTE if touchpoint.day == touchpoint.rule.day else LateIntake.SKIP


# What decides a journey's touchpoints cannot change within a term (an update may change the rest).
FIXED_WITHIN_TERM = ("product", "product_code", "bank", "renewal_centre", "first_prolongation_year")


def policy_update_problem(journey_id: str, current: Policy, new: Policy) -> str | None:
    """Why `new` cannot replace `current` in the running journey `journey_id`, or None."""
    if (new.number, new.expires_on) != (current.number, current.expires_on):
        return (
            f"policy update for {new.number} ending {new.expires_on} does not match "
            f"journey {journey_id} ({current.number} ending {current.expires_on})"
        )
    changed = [name for name in FIXED_WITHIN_TERM if getattr(new, name) != getattr(current, name)]
    if changed:
        return (
            f"{', '.join(changed)} cannot change within a policy term: they decide which touchpoints "
            "the journey has; cancel it and start a new one"
        )
    return None


# ---- holdout experiments (renewals/experiments, docs/experiments.md) -------------------------------


def holdout_reason(holdouts: Sequence[Holdout], template: str) -> str | None:
    """Why a touchpoint that would go out now is held out instead (`holdout (<experiment>)`), or None.
    Checked last, after the gate, the conditions, the address and the portal: both arms of an
    experiment are measured the same way, and only what would have been sent is held out."""
    for holdout in holdouts:
        if template in holdout.templates:
            return f"holdout ({holdout.experiment})"
    return None

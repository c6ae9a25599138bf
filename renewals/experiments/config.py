"""What an experiment is: a named share of clients (or policies) held out of a group of the journey's
rules for a period. Configured, not coded: `RENEWALS_EXPERIMENTS` (a JSON list) or `renewals simulate`'s
`"experiments"` block, each item an `Experiment`."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from renewals.models import Channel
from renewals.rules import RULES, Segment

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _templates(
    segment: Segment | None, channels: set[Channel], days: set[int] | None = None
) -> frozenset[str]:
    return frozenset(
        rule.template
        for rule in RULES
        if (segment is None or rule.segment is segment)
        and rule.channel in channels
        and (days is None or rule.day in days)
    )


# Named groups of the rules' touchpoints (renewals/rules.py) an experiment may hold out; a template name
# (e.g. `base_kasko_45`) names a one-touchpoint group of its own.
RULE_GROUPS: dict[str, frozenset[str]] = {
    "base_sms": _templates(Segment.BASE, {Channel.SMS}),
    "base_sms_early": _templates(Segment.BASE, {Channel.SMS}, {-45, -30}),  # the −45 / −30 SMS
    "base_sms_final": _templates(Segment.BASE, {Channel.SMS}, {-5}),
    "centre_messages": _templates(Segment.RENEWAL_CENTRE, {Channel.SMS, Channel.EMAIL, Channel.VK}),
    "robot_dasha": _templates(Segment.RENEWAL_CENTRE, {Channel.ROBOT_CALL}),
    "operator_call": _templates(Segment.RENEWAL_CENTRE, {Channel.OPERATOR_TASK}),
}
TEMPLATES = frozenset(rule.template for rule in RULES)


class Unit(StrEnum):
    """What is assigned to an arm. A client stays in one arm across all their policies and terms; a
    policy (its number) across its terms."""

    CLIENT = "client"
    POLICY = "policy"


class Experiment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="lower-case id, e.g. base-sms-2027q1; a new share needs a new name")
    hold_out: tuple[str, ...] = Field(min_length=1, description="rule groups or templates held out")
    share: float = Field(gt=0, le=0.5, description="the held-out share, e.g. 0.05 for 5 %")
    starts_on: date
    ends_on: date
    unit: Unit = Unit.CLIENT
    salt: str = Field(default="", max_length=200, description="default: the name")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: lower-case letters, digits, '_', '.', '-' (at most 63)")
        unknown = [group for group in self.hold_out if group not in RULE_GROUPS and group not in TEMPLATES]
        if unknown:
            known = ", ".join(sorted(RULE_GROUPS))
            raise ValueError(f"hold_out {unknown}: not a rule group ({known}) or a template of the rules")
        if self.ends_on < self.starts_on:
            raise ValueError(f"ends_on {self.ends_on} is before starts_on {self.starts_on}")
        return self

    @property
    def key(self) -> bytes:
        return (self.salt or self.name).encode()

    @property
    def templates(self) -> frozenset[str]:
        """Every template this experiment holds out."""
        return frozenset().union(*(RULE_GROUPS.get(group, frozenset({group})) for group in self.hold_out))

    def running_on(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


def overlapping(experiments: list[Experiment]) -> str | None:
    """Two experiments running at once on the same template would confound each other's arms: why
    these cannot run together, or None."""
    for i, first in enumerate(experiments):
        for second in experiments[i + 1 :]:
            if first.name == second.name:
                return f"experiment {first.name!r} is configured twice"
            shared = first.templates & second.templates
            overlap = first.starts_on <= second.ends_on and second.starts_on <= first.ends_on
            if shared and overlap:
                return (
                    f"experiments {first.name!r} and {second.name!r} both hold out {sorted(shared)} "
                    "over overlapping dates: one template, one experiment at a time"
                )
    return None

"""Which arm a client (or policy) is in: a keyed hash (HMAC-SHA256 with the experiment's salt) of the
unit's stable identity, read as a number in [0, 1). Deterministic and persistent: the same in every
process, on every re-import and in every later term, with nothing stored to look up; the arm travels in
the journey input (`JourneyInput.holdouts`), so neither a replay nor a running journey ever changes arm.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from enum import StrEnum

from renewals.experiments.config import Experiment, Unit
from renewals.journey_api import Holdout
from renewals.models import Policy, normal_policy_number
from renewals.rules import touchpoints_for

_SCALE = float(2**64)


class Arm(StrEnum):
    HOLDOUT = "holdout"
    TREATMENT = "treatment"


def unit_identity(policy: Policy, unit: Unit) -> str:
    """What stays the same for the unit across terms and re-imports: a client's phone and name (as the
    client row keys them), a policy's number in its normal form."""
    if unit is Unit.POLICY:
        return normal_policy_number(policy.number)
    client = policy.client  # the phone is in E.164 already (renewals.models.Client)
    return "|".join((client.phone, client.last_name.strip().casefold(), client.first_name.strip().casefold()))


def identity_hash(experiment: Experiment, identity: str) -> str:
    """The keyed hash of a unit's identity, hex. Never stored: the salt is configuration, not a
    secret, and a phone and name could be recovered from it by trying them (the arm is kept instead)."""
    return hmac.new(experiment.key, identity.encode(), hashlib.sha256).hexdigest()


def unit_hash(experiment: Experiment, policy: Policy) -> str:
    return identity_hash(experiment, unit_identity(policy, experiment.unit))


def arm_of_hash(experiment: Experiment, hashed: str) -> Arm:
    """The first 64 bits of the hash as a number in [0, 1): below the share is the held-out arm."""
    return Arm.HOLDOUT if int(hashed[:16], 16) / _SCALE < experiment.share else Arm.TREATMENT


def arm_of(experiment: Experiment, policy: Policy) -> Arm:
    return arm_of_hash(experiment, unit_hash(experiment, policy))


def applies(experiment: Experiment, policy: Policy, today: date) -> bool:
    """The experiment runs today and holds out something this policy's journey would send: only such
    journeys are in it (a base-SMS experiment says nothing about a renewal-centre client)."""
    mine = {touchpoint.rule.template for touchpoint in touchpoints_for(policy)}
    return experiment.running_on(today) and bool(experiment.templates & mine)


def arms_for(policy: Policy, experiments: list[Experiment], today: date) -> dict[str, Arm]:
    """The policy's arm in each experiment that applies to it today."""
    return {e.name: arm_of(e, policy) for e in experiments if applies(e, policy, today)}


def holdouts_for(policy: Policy, experiments: list[Experiment], today: date) -> tuple[Holdout, ...]:
    """The journey input's holdouts: the experiments that apply today and hold this policy out."""
    arms = arms_for(policy, experiments, today)
    return tuple(
        Holdout(experiment=experiment.name, templates=tuple(sorted(experiment.templates)))
        for experiment in experiments
        if arms.get(experiment.name) is Arm.HOLDOUT
    )

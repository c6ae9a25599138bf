"""Uplift of an experiment: secured rate of the treated minus that of the held out, in percentage
points, with a 95 % confidence interval (Newcombe's hybrid score interval for a difference of
independent proportions), a two-proportion z-test, and the sample per arm needed to detect a given
uplift. All from statsmodels, not hand-written formulas."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Uplift:
    treated: int
    treated_secured: int
    held_out: int
    held_out_secured: int
    uplift_pp: float | None  # treated rate − held-out rate, percentage points
    low_pp: float | None  # the 95 % interval
    high_pp: float | None
    p_value: float | None  # two-sided, H0: equal rates
    needed_per_arm: int | None  # treated journeys needed to detect `detect_pp` (held out in proportion)
    detect_pp: float

    @property
    def treated_rate(self) -> float | None:
        return self.treated_secured / self.treated if self.treated else None

    @property
    def held_out_rate(self) -> float | None:
        return self.held_out_secured / self.held_out if self.held_out else None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < 0.05


def uplift(
    treated: int,
    treated_secured: int,
    held_out: int,
    held_out_secured: int,
    detect_pp: float = 2.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Uplift:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        proportion_effectsize,
        proportions_ztest,
    )

    empty = Uplift(
        treated, treated_secured, held_out, held_out_secured, None, None, None, None, None, detect_pp
    )
    if not treated or not held_out:
        return empty
    p_treated, p_held = treated_secured / treated, held_out_secured / held_out
    low, high = confint_proportions_2indep(
        treated_secured, treated, held_out_secured, held_out, method="newcomb", compare="diff", alpha=alpha
    )
    if treated_secured + held_out_secured in (0, treated + held_out):  # no variance: no z-test
        p_value = None
    else:
        _, p = proportions_ztest([treated_secured, held_out_secured], [treated, held_out])
        p_value = float(p)
    needed = None
    base = p_held
    target = min(max(base + detect_pp / 100, 0.0), 1.0)
    effect = float(proportion_effectsize(target, base))
    if effect:
        size = NormalIndPower().solve_power(
            effect_size=abs(effect), alpha=alpha, power=power, ratio=held_out / treated
        )
        needed = math.ceil(float(size))
    return Uplift(
        treated,
        treated_secured,
        held_out,
        held_out_secured,
        (p_treated - p_held) * 100,
        float(low) * 100,
        float(high) * 100,
        p_value,
        needed,
        detect_pp,
    )

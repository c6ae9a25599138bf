"""What every journey start (and every policy update) applies besides the stored policy: the agent
gate's measured rates (renewals/agent_rates.py) and the experiments' holdouts (renewals/experiments).

Prepared once per run (`renewals start`, the daily intake, an import's sync): the measured rates are
refreshed and the configured experiments registered (a changed running experiment is refused before
anything starts), then each policy is given to its journey with those rates on its agent card, and a
new journey gets its holdouts in its input and its arms recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from renewals import agent_rates
from renewals.db.database import Database
from renewals.experiments.assignment import holdouts_for
from renewals.experiments.config import Experiment
from renewals.experiments.registry import record_arms, register
from renewals.journey_api import Holdout
from renewals.models import Line, Policy


@dataclass(frozen=True)
class GateRates:
    """`RENEWALS_GATE_RATES`: `card` (the imported rates) or `measured` (this system's, where enough)."""

    measured: bool = False
    window_days: int = 365
    min_policies: int = 30


@dataclass(frozen=True)
class StartPlan:
    today: date
    experiments: tuple[Experiment, ...] = ()
    rates: Mapping[str, Mapping[Line, float]] = field(default_factory=dict)

    @classmethod
    async def prepare(
        cls, db: Database, today: date, experiments: Sequence[Experiment] = (), gate: GateRates | None = None
    ) -> StartPlan:
        gate = gate or GateRates()
        await register(db, experiments)
        await agent_rates.refresh(db, today, gate.measured, gate.window_days, gate.min_policies)
        return cls(today, tuple(experiments), await agent_rates.gate_rates(db))

    def policy(self, policy: Policy) -> Policy:
        """The policy as its journey receives it: the measured rates replace the card's, line by line."""
        measured = self.rates.get(policy.agent.id)
        if not measured:
            return policy
        agent = policy.agent.model_copy(update={"renewal_rates": {**policy.agent.renewal_rates, **measured}})
        return policy.model_copy(update={"agent": agent})

    def holdouts(self, policy: Policy) -> tuple[Holdout, ...]:
        return holdouts_for(policy, list(self.experiments), self.today)

    async def record(self, db: Database, policy: Policy) -> None:
        """A started journey's arms (both arms), once."""
        if self.experiments:
            await record_arms(db, policy, self.experiments, self.today)

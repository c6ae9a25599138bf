"""Experiments and arms in the application database.

`register` records each configured experiment the first time it is seen and refuses one whose share,
groups, unit or salt differ from what it started with: a running experiment's arms must mean the same
thing from its first journey to its last (to try another share, start a new experiment). Only the end
date may move. `record_arms` writes a journey's arm in every experiment that applies to it, once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import select

from renewals.db.database import Database
from renewals.db.tables_experiments import ExperimentArmRow, ExperimentRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.experiments.assignment import arms_for
from renewals.experiments.config import Experiment, overlapping
from renewals.models import Policy, journey_id
from renewals.rules import segment_of


class ExperimentChanged(ValueError):
    """A configured experiment differs from the one that is running under its name."""


def _fingerprint(experiment: Experiment) -> dict[str, object]:
    return {
        "share": experiment.share,
        "hold_out": json.dumps(sorted(experiment.hold_out)),
        "unit": experiment.unit.value,
        "salt_hash": hashlib.sha256(experiment.key).hexdigest(),
        "starts_on": experiment.starts_on,
    }


async def register(db: Database, experiments: Sequence[Experiment]) -> list[str]:
    """Record new experiments; refuse a changed one (`ExperimentChanged`, naming it and what changed).
    Returns the names newly registered."""
    problem = overlapping(list(experiments))
    if problem:
        raise ExperimentChanged(problem)
    added: list[str] = []
    async with db.session() as session, session.begin():
        for experiment in experiments:
            stored = await session.get(ExperimentRow, experiment.name)
            wanted = _fingerprint(experiment)
            if stored is None:
                session.add(
                    ExperimentRow(
                        name=experiment.name,
                        ends_on=experiment.ends_on,
                        registered_at=datetime.now(UTC),
                        **wanted,
                    )
                )
                added.append(experiment.name)
                continue
            changed = [name for name, value in wanted.items() if getattr(stored, name) != value]
            if changed:
                shown = ", ".join("salt" if name == "salt_hash" else name for name in changed)
                raise ExperimentChanged(
                    f"experiment {experiment.name!r} is running with other {shown} than configured "
                    f"(share {stored.share:.1%} from {stored.starts_on}): a running experiment cannot "
                    "change — start a new one under a new name"
                )
            stored.ends_on = experiment.ends_on
    return added


async def record_arms(db: Database, policy: Policy, experiments: Sequence[Experiment], today: date) -> int:
    """The journey's arm in each experiment that applies to it (both arms), once: a restart or a second
    intake finds the row and changes nothing. Returns the rows written."""
    arms = arms_for(policy, list(experiments), today)
    if not arms:
        return 0
    written = 0
    workflow_id = journey_id(policy.number, policy.expires_on)
    async with db.session() as session, session.begin():
        dialect = db.engine.dialect.name
        for name, arm in arms.items():
            values = {
                "journey_id": workflow_id,
                "experiment": name,
                "arm": arm.value,
                "policy_number": policy.number,
                "expires_on": policy.expires_on,
                "product": policy.product.value,
                "segment": segment_of(policy).value,
                "agent_id": policy.agent.id,
                "assigned_at": datetime.now(UTC),
            }
            result = await session.execute(
                insert_ignoring_conflict(dialect, ExperimentArmRow, values, ["journey_id", "experiment"])
            )
            written += int(getattr(result, "rowcount", 0) or 0)
    return written


async def registered(db: Database) -> list[ExperimentRow]:
    async with db.session() as session:
        return list((await session.scalars(select(ExperimentRow).order_by(ExperimentRow.starts_on))).all())

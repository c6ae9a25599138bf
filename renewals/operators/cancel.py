"""Cancelling a journey by hand: the service behind `renewals cancel POLICY` and
`POST /operators/journeys/cancel`.

Both send Temporal's own cancellation request (`renewals.temporal.journeys.cancel_journey`), the
same the UI's «Request Cancellation» sends, so there is one way a journey is cancelled: the journey
records `cancelled` with the request's reason ("<reason> (by <who>)"), closes its operator tasks,
writes its outcome, and then ends as Canceled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from temporalio.client import Client

from renewals.db.database import Database
from renewals.intake.portfolio_store import current_term
from renewals.models import journey_id
from renewals.operators.workbench import Refused
from renewals.temporal.journeys import CancelRefused, NoSuchJourney, cancel_journey, cancellation_reason


class InvalidCancel(Refused):
    status = 422


class UnknownJourney(Refused):
    status = 404


@dataclass(frozen=True)
class CancelRequested:
    journey_id: str
    stage: str | None  # the stage it had when asked
    reason: str  # as the journey records it


async def resolve_journey(db: Database, policy: str, expires_on: date | None, today: date) -> str:
    """The journey a policy means: a journey id as given; the term ending `expires_on`; else the
    portfolio's next term to end (the latest one if all have ended)."""
    text = policy.strip()
    if not text:
        raise InvalidCancel("a policy number (or a journey id) is required")
    if text.startswith("renewal-"):
        return text
    term = expires_on or await current_term(db, text, today)
    if term is None:
        raise UnknownJourney(
            f"no policy {text} in the portfolio: give its last day of cover (--expires-on / expires_on)"
        )
    return journey_id(text, term)


async def cancel(
    db: Database,
    client: Client,
    policy: str,
    expires_on: date | None,
    reason: str | None,
    by: str | None,
) -> CancelRequested:
    """Ask the policy's running journey to cancel itself; refused (422 bad input, 404 no journey,
    409 already ended) with the reason."""
    try:
        recorded = cancellation_reason(reason, by)
    except CancelRefused as refusal:
        raise InvalidCancel(str(refusal)) from None
    journey = await resolve_journey(db, policy, expires_on, datetime.now(UTC).date())
    try:
        state = await cancel_journey(client, journey, recorded)
    except NoSuchJourney as missing:
        raise UnknownJourney(str(missing)) from None
    except CancelRefused as refusal:
        raise Refused(str(refusal)) from None
    return CancelRequested(journey, state.stage, recorded)

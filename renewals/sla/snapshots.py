"""Save an application's snapshot (idempotently: replace its rows) and load a week of them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select

from renewals.db.database import Database
from renewals.sla.models import ApplicationStatus, SlaStatus
from renewals.sla.tables import SlaApplicationRow, SlaStatusPeriodRow


async def save_application(db: Database, status: ApplicationStatus) -> None:
    """Replace the application's rows in one transaction: a retried activity writes the same state."""
    submitted = status.entered(SlaStatus.SUBMITTED)
    assert submitted is not None  # every journey starts submitted
    async with db.session() as session, session.begin():
        await session.execute(
            delete(SlaStatusPeriodRow).where(SlaStatusPeriodRow.workflow_id == status.workflow_id)
        )
        await session.execute(
            delete(SlaApplicationRow).where(SlaApplicationRow.workflow_id == status.workflow_id)
        )
        session.add(
            SlaApplicationRow(
                workflow_id=status.workflow_id,
                application_id=status.id,
                partner=status.partner,
                urgent=status.urgent,
                status=status.status.value,
                submitted_at=submitted.astimezone(UTC),
                paid_at=_utc(status.entered(SlaStatus.PAID)),
                issued_at=_utc(status.entered(SlaStatus.ISSUED)),
                breaches=status.breaches,
                process_flag=status.process_flag,
                snapshot=status.model_dump_json(),
                updated_at=datetime.now(UTC),
            )
        )
        session.add_all(
            SlaStatusPeriodRow(
                workflow_id=status.workflow_id,
                status=period.status.value,
                entered_at=period.entered.astimezone(UTC),
                left_at=_utc(period.left),
                business_seconds=period.business_seconds,
                changed_by=period.by,
                reason=period.reason,
            )
            for period in status.periods
        )


async def load_applications(
    db: Database, start: datetime, end: datetime, partner: str | None = None
) -> list[ApplicationStatus]:
    """Applications submitted in [start, end), optionally of one partner, oldest first."""
    query = (
        select(SlaApplicationRow.snapshot)
        .where(SlaApplicationRow.submitted_at >= start.astimezone(UTC))
        .where(SlaApplicationRow.submitted_at < end.astimezone(UTC))
        .order_by(SlaApplicationRow.submitted_at, SlaApplicationRow.workflow_id)
    )
    if partner is not None:
        query = query.where(SlaApplicationRow.partner == partner)
    async with db.session() as session:
        rows = (await session.execute(query)).scalars().all()
    return [ApplicationStatus.model_validate_json(row) for row in rows]


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None

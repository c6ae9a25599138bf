"""SLA targets and the support schedule from the environment (prefix RENEWALS_SLA_).

Defaults are the seed's market guide: preliminary calculation within 15 business minutes, check and
issuance after payment within 1–2 hours (target 60, hard limit 120), an urgent reaction within
10–15 minutes around the clock. Read by the starter, never by workflow code.
"""

from __future__ import annotations

from datetime import time
from functools import cache

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from renewals.sla.models import ClockSpec, SlaStatus, SupportCalendar


class SlaTargets(BaseModel):
    """Minutes per clock; the warning of the issuance clock is its target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calculation_minutes: int = Field(default=15, gt=0)
    calculation_warning_minutes: int = Field(default=10, gt=0)
    issuance_target_minutes: int = Field(default=60, gt=0)
    issuance_limit_minutes: int = Field(default=120, gt=0)
    urgent_reaction_minutes: int = Field(default=15, gt=0)
    urgent_warning_minutes: int = Field(default=10, gt=0)

    def clocks(self) -> list[ClockSpec]:
        """Calculation (submitted → calculated) and issuance (paid → issued) in business time; for
        urgent applications also the first reaction (submitted → any change), in wall time: the
        urgent line answers around the clock."""
        calculation = (self.calculation_warning_minutes, self.calculation_minutes)
        issuance = (self.issuance_target_minutes, self.issuance_limit_minutes)
        return [
            _clock("calculation", SlaStatus.SUBMITTED, SlaStatus.CALCULATED, calculation),
            _clock("issuance", SlaStatus.PAID, SlaStatus.ISSUED, issuance),
            ClockSpec(
                name="urgent_reaction",
                starts_at=SlaStatus.SUBMITTED,
                stops_at=None,
                warn_minutes=self.urgent_warning_minutes,
                limit_minutes=self.urgent_reaction_minutes,
                business_time=False,
                urgent_only=True,
            ),
        ]


def _clock(name: str, starts_at: SlaStatus, stops_at: SlaStatus, minutes: tuple[int, int]) -> ClockSpec:
    """A business-time clock from `starts_at` to `stops_at`: (warning, limit) minutes."""
    warn, limit = minutes
    return ClockSpec(
        name=name, starts_at=starts_at, stops_at=stops_at, warn_minutes=warn, limit_minutes=limit
    )


class SlaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RENEWALS_SLA_", env_file=".env", extra="ignore")

    timezone: str = "Europe/Moscow"
    open: time = time(9, 0)
    close: time = time(18, 0)
    calculation_minutes: int = 15
    calculation_warning_minutes: int = 10
    issuance_target_minutes: int = 60
    issuance_limit_minutes: int = 120
    urgent_reaction_minutes: int = 15
    urgent_warning_minutes: int = 10
    # The dedicated urgent line (a duty phone, a group chat): urgent applications' warnings and
    # hand-overs go there instead of to the stage's responsible person.
    urgent_line: str = "urgent-line"

    def calendar(self) -> SupportCalendar:
        return SupportCalendar(timezone=self.timezone, open=self.open, close=self.close)

    def targets(self) -> SlaTargets:
        return SlaTargets.model_validate(self.model_dump(include=set(SlaTargets.model_fields)))


@cache
def get_sla_settings() -> SlaSettings:
    return SlaSettings()

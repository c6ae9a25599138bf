"""A listed e-mail or VK id stops that channel only (an unsubscribe, a bounce, VK's message_deny);
a listed phone is the client's own opt-out and ends the journey."""

from __future__ import annotations

from pathlib import Path

import pytest

from renewals.delivery import OptOuts
from renewals.journey_api import Stage
from tests.factories import CLIENT, policy
from tests.harness import INTAKE, journey_harness, msk
from workflows.renewal import RenewalJourney


@pytest.mark.parametrize(
    ("listed", "suppressed"), [(CLIENT["email"], "d-30-email"), (CLIENT["vk_id"], "d-30-vk")]
)
async def test_a_listed_email_or_vk_id_stops_that_channel_only(
    tmp_path: Path, listed: str, suppressed: str
) -> None:
    async with journey_harness(tmp_path) as h:
        await OptOuts(h.db).add([listed], "email: hard_bounced", None, source="webhook:email")
        handle = await h.start(policy("KASKO", number="CHAN-1", renewal_centre=True), INTAKE)
        await h.skip_to(msk(3, 21, 12))  # −30's e-mail, VK and SMS
        status = await handle.query(RenewalJourney.status)
    at_30 = {e.touchpoint: e.status.value for e in status.timeline if e.touchpoint.startswith("d-30")}
    assert at_30[suppressed] == "suppressed"
    assert {k: v for k, v in at_30.items() if k != suppressed} == {
        k: "sent" for k in ("d-30-email", "d-30-vk", "d-30-sms") if k != suppressed
    }
    assert status.stage is not Stage.OPTED_OUT  # Робот Даша, the operator and −5 still to come


async def test_a_listed_phone_ends_the_journey(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        await OptOuts(h.db).add([CLIENT["phone"]], "STOP", None)
        handle = await h.start(policy("KASKO", number="CHAN-2"), INTAKE)
        await h.skip_to(msk(3, 7))  # −45 SMS
        status = await handle.query(RenewalJourney.status)
    assert status.stage is Stage.OPTED_OUT

"""Record the one stored history per workflow type that tests/test_replay.py replays:
`python -m tests.record_history` writes tests/histories/<workflow type>.json.

The histories are recorded through the codec with the fixed test keyring (tests/keys.py: the harness and
tests/sla_support.py run on `TEST_CONVERTER`), so every payload in them is encrypted, as in production.

From 0.1.0 on, re-record only together with a `workflow.patched()`-guarded change, and keep the old
history next to the new one (`<workflow type>.<patch id>.json`) until the patch is retired
(docs/versioning.md): never overwrite an old history to make the replay test pass.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from temporalio.client import WorkflowHistory

from renewals.journey_api import EventType, JourneyEvent
from renewals.sendwindow import zone
from tests.factories import policy
from tests.harness import journey_harness
from tests.sla_support import record_sla_history
from workflows.renewal import RenewalJourney

HISTORIES = Path(__file__).with_name("histories")
MSK = zone("Europe/Moscow")


async def record_renewal_journey(tmp: Path) -> WorkflowHistory:
    """A renewal-centre КАСКО+ОСАГО journey: the −30 e-mail, VK and SMS, Робот Даша's daily calls,
    a policy update (a new e-mail), the −17 e-mail and operator task, a draft that holds the −5 SMS,
    and the end of cover."""
    async with journey_harness(tmp) as h:
        centre = policy("KASKO_OSAGO", number="HIST-1", renewal_centre=True)
        handle = await h.start(centre, datetime(2027, 3, 1, 10, tzinfo=MSK))
        await h.skip_to(datetime(2027, 3, 24, 12, tzinfo=MSK))
        moved = centre.model_copy(
            update={"client": centre.client.model_copy(update={"email": "new@example.org"})}
        )
        await handle.execute_update(RenewalJourney.on_policy_update, moved)
        await h.skip_to(datetime(2027, 4, 10, 12, tzinfo=MSK))
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.DRAFT_CREATED))
        await handle.result()
        return await handle.fetch_history()


RECORDERS: dict[str, Callable[[Path], Awaitable[WorkflowHistory]]] = {
    "RenewalJourney": record_renewal_journey,
    "PartnerApplication": lambda tmp: record_sla_history(),
}


async def record_all() -> None:
    """Each workflow type in a fresh environment and database."""
    HISTORIES.mkdir(exist_ok=True)
    for workflow_type, record in RECORDERS.items():
        with tempfile.TemporaryDirectory() as tmp:
            history = await record(Path(tmp))
        (HISTORIES / f"{workflow_type}.json").write_text(history.to_json(), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(record_all())

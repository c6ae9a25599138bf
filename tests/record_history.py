"""Record the histories the replay test keeps: `python -m tests.record_history v3` writes `*_v3.json`.

Run it only when a deliberate, `workflow.patched()`-guarded change needs a new history next to the old
ones; never overwrite an old history to make the replay test pass.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from renewals.journey_api import EventType, JourneyEvent
from renewals.sendwindow import zone
from tests.factories import policy
from tests.harness import journey_harness
from workflows.renewal import RenewalJourney

HISTORIES = Path(__file__).with_name("histories")


async def record(version: str) -> None:
    """Each journey in a fresh environment, so each starts at its own intake time."""
    msk = zone("Europe/Moscow")
    with tempfile.TemporaryDirectory() as tmp:
        async with journey_harness(Path(tmp)) as h:
            centre = policy("KASKO_OSAGO", number="HIST-1", renewal_centre=True)
            handle = await h.start(centre, datetime(2027, 3, 1, 10, tzinfo=msk))
            await h.skip_to(datetime(2027, 3, 24, 12, tzinfo=msk))
            await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.DRAFT_CREATED))
            await handle.result()
            history = await handle.fetch_history()
            (HISTORIES / f"renewal_centre_{version}.json").write_text(history.to_json(), encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        async with journey_harness(Path(tmp)) as h:
            base = policy("OSAGO", number="HIST-2", first_prolongation_year=True)
            handle = await h.start(base, datetime(2027, 3, 2, 10, tzinfo=msk))
            await h.skip_to(datetime(2027, 3, 25, 12, tzinfo=msk))
            await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.PAYMENT_RECEIVED))
            await handle.result()
            history = await handle.fetch_history()
            (HISTORIES / f"base_osago_paid_{version}.json").write_text(history.to_json(), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "new"))

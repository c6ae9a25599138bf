"""`python -m bench.nocodec_simulate SCENARIOS.json`: `renewals simulate` with the plain pydantic converter
instead of the encrypted one, to measure what the payload codec costs the simulator. Nothing here is used
in production.

The patch is applied when this module is imported, not under `__main__`: `renewals simulate` splits many
scenarios over `spawn`ed processes, and each of them re-imports this module (as `__mp_main__`) before it
runs its share, so every process simulates without the codec. Each one says so on stderr (the bench
counts those lines).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import renewals.encryption
from renewals.encryption import data_converter


def _without_codec(*args: Any, **kwargs: Any) -> Any:
    print(f"bench: simulating without the payload codec (pid {os.getpid()})", file=sys.stderr, flush=True)
    return data_converter(None)


# starter.simulate imports `settings_converter` from the package when it runs its scenarios.
renewals.encryption.settings_converter = _without_codec


if __name__ == "__main__":
    from starter.cli import main

    main(["simulate", *sys.argv[1:]])

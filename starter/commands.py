"""What every command module of the `renewals` tree shares: each has `register(commands)`, which adds
its subparser and sets `handler`, a function of the parsed arguments returning the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

# The `add_subparsers()` object a command module registers its parser on.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]

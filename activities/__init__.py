"""Temporal activities: every piece of I/O a journey does, as methods of classes that hold their
dependencies (database, channels), so tests and the simulator swap the dependency, not the code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def activity_methods(activities: object) -> list[Callable[..., Any]]:
    """Every `@activity.defn` method of `activities`, bound: what a worker's `activities=` takes."""
    cls = type(activities)
    return [
        getattr(activities, name)
        for name in sorted(vars(cls))
        if hasattr(getattr(cls, name), "__temporal_activity_definition")
    ]

"""Dialect-aware 'insert unless the unique key exists': the primitive every idempotent write uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase


def insert_ignoring_conflict(
    dialect: str, table: type[DeclarativeBase], values: dict[str, Any], key: list[str]
) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=key)
    return sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=key)

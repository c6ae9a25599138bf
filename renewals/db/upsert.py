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


def insert_new_rows(
    dialect: str, table: type[DeclarativeBase], rows: list[dict[str, Any]], key: list[str]
) -> Insert:
    """One multi-row insert that skips rows whose key exists (add `.returning(...)` to learn which
    were new: both dialects return only the inserted rows)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).values(rows).on_conflict_do_nothing(index_elements=key)

"""Dialect-aware 'insert unless the unique key exists' (the primitive every idempotent write uses)
and 'insert or overwrite' (one statement where an ORM `merge` would read each row first)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase


def insert_ignoring_conflict(
    dialect: str,
    table: type[DeclarativeBase],
    values: dict[str, Any] | list[dict[str, Any]],
    key: list[str],
) -> Insert:
    """One row (a dict) or many (a list: one multi-row statement). Add `.returning(...)` to learn
    which rows were new: both dialects return only the inserted ones."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).values(values).on_conflict_do_nothing(index_elements=key)


def upsert(
    dialect: str,
    table: type[DeclarativeBase],
    values: dict[str, Any] | list[dict[str, Any]],
    key: list[str],
) -> Insert:
    """Insert, or overwrite every other column of the row with the same `key`: one statement for
    one row or many (keep a batch under SQLite's 32,766 bound parameters)."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(values)
    rows = values if isinstance(values, list) else [values]
    columns = [name for name in rows[0] if name not in key] if rows else []
    return insert.on_conflict_do_update(
        index_elements=key, set_={name: insert.excluded[name] for name in columns}
    )

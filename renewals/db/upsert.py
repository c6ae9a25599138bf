"""Dialect-aware 'insert unless the unique key exists': the primitive every idempotent write uses."""

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

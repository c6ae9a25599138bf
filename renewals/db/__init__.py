"""The application database: tables, the async engine, and migrations (Alembic)."""

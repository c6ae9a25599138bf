"""Temporal activities: every piece of I/O a journey does."""

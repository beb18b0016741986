"""Persistence of analysis runs (SQLite embedded default, PostgreSQL by URL)."""

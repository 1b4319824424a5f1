"""Alembic migrations (a package so that the environment ships with an installed project)."""

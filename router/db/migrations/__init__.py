"""Alembic migrations, shipped inside the package so `firstline db upgrade` works anywhere."""

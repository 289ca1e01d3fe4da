"""The PostgreSQL front: agents' psql, psycopg, asyncpg and pg8000 sessions, decided
statement by statement (docs/architecture.md, "PostgreSQL targets").

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""

"""The PostgreSQL front: agents' psql, psycopg, asyncpg and pg8000 sessions, decided
statement by statement (docs/architecture.md, "PostgreSQL targets")."""

"""The MySQL front: agents' mariadb and mysql clients and PyMySQL sessions, decided command
by command (docs/architecture.md, "MySQL targets").

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""

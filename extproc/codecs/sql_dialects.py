"""The SQL dialects tollgate reads: postgres (pglast) and sqlglot's.

Spelled out rather than read from sqlglot, so that checking a configuration's dialect
imports no parser; a test holds the list to sqlglot's own (`Dialects`), so an upgrade that
adds one fails there first.
"""

DIALECTS: frozenset[str] = frozenset({
    "athena", "bigquery", "clickhouse", "databricks", "dax", "doris", "dremio", "drill",
    "druid", "duckdb", "dune", "exasol", "fabric", "hive", "materialize", "mysql", "oracle",
    "postgres", "presto", "prql", "redshift", "risingwave", "snowflake", "solr", "spark",
    "spark2", "sqlite", "starrocks", "tableau", "teradata", "trino", "tsql",
})

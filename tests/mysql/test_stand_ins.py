"""Each MariaDB type's stand-in (extproc/mysql/results.py) is a value of that type: a NOT
NULL column of each, described by the server's column definitions as the front reads
them, takes its stand-in back under a strict SQL mode and gives it back as the server
wrote it; and a string column's slot holds what its declared length holds."""

from __future__ import annotations

import secrets
from typing import Any

import pymysql

from extproc.masking.fitting import Slot
from extproc.mysql.results import slot
from extproc.mysql.resultsets import ColumnDefinition
from tests.support.mysql_shop import as_root

TYPES = ["TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT UNSIGNED", "FLOAT", "DOUBLE",
         "DECIMAL(10,2)", "DECIMAL(5)", "YEAR", "DATE", "DATETIME", "DATETIME(3)",
         "TIMESTAMP", "TIMESTAMP(6)", "TIME", "TIME(2)", "BIT(3)", "BIT(12)"]


def _definition(field: Any) -> ColumnDefinition:
    """PyMySQL's reading of a column definition, as the front's parser reads it."""
    return ColumnDefinition(name=field.name, org_table=field.org_table,
                            charset=field.charsetnr, length=field.length, type=field.type_code,
                            flags=field.flags, decimals=field.scale)


def test_every_stand_in_is_a_value_its_not_null_column_takes_back() -> None:
    database = f"tollgate_stand_ins_{secrets.token_hex(4)}"
    as_root(f"CREATE DATABASE {database}")
    try:
        connection = pymysql.connect(host="127.0.0.1", port=3306, user="root",
                                     database=database, charset="utf8mb4", autocommit=True)
        with connection, connection.cursor() as cursor:
            cursor.execute("SET sql_mode = 'STRICT_ALL_TABLES', time_zone = '+00:00'")
            cursor.execute("CREATE TABLE typed (" + ", ".join(
                f"c{i} {kind} NOT NULL" for i, kind in enumerate(TYPES)) + ", s VARCHAR(16), "
                "f CHAR(11), b BINARY(4), t TINYTEXT, e ENUM('a', 'b') NOT NULL)")
            cursor.execute("SELECT * FROM typed")
            columns = [_definition(f) for f in cursor._result.fields]
            stand_ins = [slot(c).stand_in for c in columns[:len(TYPES)]]
            assert None not in stand_ins
            cursor.execute(f"INSERT INTO typed VALUES ({', '.join(['%s'] * len(TYPES))}, "
                           "NULL, NULL, NULL, NULL, 'a')", stand_ins)
            cursor.execute("SELECT " + ", ".join(
                f"CAST(c{i} AS BINARY)" for i in range(len(TYPES))) + " FROM typed")
            assert list(cursor.fetchone()) == stand_ins
    finally:
        as_root(f"DROP DATABASE IF EXISTS {database}")
    s, f, b, t, e = columns[len(TYPES):]
    assert (slot(s), slot(f), slot(t)) == (Slot(16), Slot(11), Slot(255, in_bytes=True))
    assert slot(b) == Slot(4, in_bytes=True, pad="\0")
    assert slot(e).stand_in is None  # an ENUM's members are not known: NULL

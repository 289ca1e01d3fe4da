"""Each PostgreSQL type's stand-in (extproc/postgres/slots.py) is a value of that type:
a NOT NULL column of each, described by the catalog as the front reads it before a
table's COPY, takes its stand-in back through COPY ... FROM (a restore) and writes it out
again as it came, under the settings pg_dump sets; and a text column's slot holds what
its declared length holds."""

from __future__ import annotations

import psycopg

from extproc.masking.fitting import Slot
from extproc.postgres import slots
from extproc.postgres.messages import Column
from tests.support.databases import throwaway_database

TYPES = ["smallint", "integer", "bigint", "oid", "real", "double precision", "numeric(10,2)",
         "numeric", "boolean", "date", "timestamp", "timestamptz", "time", "timetz",
         "interval", "uuid", "inet", "cidr", "macaddr", "macaddr8", "bytea", "bit(3)",
         "varbit", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange"]


def test_every_stand_in_is_a_value_its_not_null_column_takes_back() -> None:
    columns = ", ".join(f"c{i} {kind} NOT NULL" for i, kind in enumerate(TYPES))
    with throwaway_database("tollgate_slots") as url, psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        conn.execute(f"CREATE TABLE typed ({columns})")
        described = conn.execute(
            "SELECT attname, atttypid, atttypmod FROM pg_attribute WHERE attrelid = "
            "'typed'::regclass AND attnum > 0 ORDER BY attnum").fetchall()
        stand_ins = []
        for name, oid, typmod in described:
            stand_in = slots.slot(Column(name, 0, 0, oid, -1, typmod, 0), nullable=False)
            assert stand_in.stand_in is not None, name
            stand_ins.append(stand_in.stand_in.decode())
        line = "\t".join(s.replace("\\", "\\\\") for s in stand_ins) + "\n"
        with conn.cursor().copy("COPY typed FROM STDIN") as copy:
            copy.write(line)
        with conn.cursor().copy("COPY typed TO STDOUT") as copy:
            assert b"".join(bytes(block) for block in copy).decode() == line
        # Nullable, a column gets NULL; a text one its length.
        assert slots.slot(Column("c0", 0, 0, 20, -1, -1, 0)).stand_in is None
        assert slots.slot(Column("s", 0, 0, 1043, -1, 20, 0)) == Slot(16)
        assert slots.slot(Column("s", 0, 0, 1042, -1, 15, 0)) == Slot(11, pad=" ")

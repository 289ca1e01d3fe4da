# How much a write touches (postgres targets): before a write is decided, the PostgreSQL
# front asks the database's planner how many rows it expects the write to touch, and how
# big each table it writes is (extproc/postgres/estimate.py); each top-level statement
# that writes carries the answer in input.sql.statements[].estimate:
#   {"writes": [{"table": "public.customers", "operation": "delete", "rows": 4,
#                "table_rows": 4, "counted": true, "statistics": "fresh"}],
#    "unavailable": null}
# A write over its target's limits, or whose estimate could not be had, waits for a dba.
# A statement without `estimate` (sql-http targets, records from before it) is left to
# sql.rego, which holds a write its text does not bound.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (sql_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
# (sql_exchange: sql.rego's.)

holds contains x if {
	sql_exchange
	some x in blast_holds
}

# The limits, per target name ("*": every target without an entry of its own, whose
# missing keys it fills). A write is held when the planner expects it to touch more than
# `rows` rows, or — an UPDATE, DELETE or MERGE of more than `floor` rows — more than
# `percent` percent of its table. A table too big to count whose statistics are stale or
# missing (`statistics`: the estimate may be far off) counts as touched for at least
# `stale_percent` percent of its rows. A write the database measured changing more than
# `large_rows` rows of a table is held by `blast.large_effect` too, which approvals.rego
# gives to two different approvers. E.g. {"*": {...}, "orders-db": {"rows": 50000}}.
blast_limits := {"*": {"rows": 1000, "percent": 20, "floor": 1, "stale_percent": 1, "large_rows": 10000}}

blast_limit := object.union(blast_limits["*"], object.get(blast_limits, input.target.name, {}))

blast_holds contains {
	"rule": "blast.rows",
	"reason": blast_reason(w),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	some s in estimated_statements
	some w in s.estimate.writes
	is_object(w)
	blast_over(w)
}

# The planner could not be asked (a pipeline, a failed transaction, a function defined in
# the database, a foreign table, a statement it cannot plan): how much the write touches is
# not known, so it waits as one over the limits would.
blast_holds contains {
	"rule": "blast.unknown",
	"reason": sprintf("%s: how many rows it touches is not known: %s", [upper(object.get(s, "kind", "statement")), s.estimate.unavailable]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	not blast_measured
	some s in estimated_statements
	is_string(s.estimate.unavailable)
}

# The write's effect is (or is about to be) measured by the database (input.effect with
# `measured` true, or null in the first decision of a write the front will measure):
# an estimate that could not be had, or whose statistics are stale, then holds nothing
# on its own; the measured effect decides.
blast_measured if {
	is_object(input.effect)
	input.effect.measured != false
}

estimated_statements := [s | some s in sql_statements; is_object(s.estimate)]

blast_over(w) if w.rows > blast_limit.rows

blast_over(w) if {
	w.operation in {"update", "delete", "merge"}
	w.rows > blast_limit.floor
	is_number(w.table_rows)
	w.rows * 100 > blast_limit.percent * w.table_rows
}

blast_over(w) if {
	not blast_measured
	blast_unsure(w)
	w.table_rows * blast_limit.stale_percent > blast_limit.rows * 100
}

blast_unsure(w) if {
	w.counted == false
	w.statistics in {"stale", "none"}
	is_number(w.table_rows)
}

blast_reason(w) := sprintf("%s%s", [blast_size(w), blast_doubt(w)])

blast_size(w) := sprintf("%s touches about %d of %d rows of %s", [upper(w.operation), w.rows, w.table_rows, w.table]) if {
	is_number(w.table_rows)
} else := sprintf("%s touches about %d rows of %s", [upper(w.operation), w.rows, w.table])

blast_doubt(w) := sprintf(" (the table's statistics are %s: the estimate may be far off; ANALYZE %s)", [blast_statistics[w.statistics], w.table]) if {
	blast_unsure(w)
} else := ""

blast_statistics := {"stale": "stale", "none": "missing"}

# What the write did (postgres targets: a simple Query, or an Execute of the extended
# protocol; mysql targets: a COM_QUERY or a prepared statement's execute): the front runs
# a write the estimate (or the text) let through inside a savepoint (or a transaction of
# its own), reads the rows the database changed in every table — through cascades,
# triggers and views — and asks again with input.effect (extproc/postgres/effect.py,
# extproc/mysql/effect.py):
#   {"measured": true, "rows": 4, "written": ["public.orders"], "unavailable": null,
#    "tables": [{"table": "public.customers", "inserted": 0, "updated": 0, "deleted": 4,
#                "table_rows": 4}]}
# A table over the same limits holds it (rolled back meanwhile); once approved it runs
# again, refused if it changes more than it did. An effect that could not be measured
# (transaction control in its text, COPY FROM, a failed transaction; on MySQL also a
# table no rollback undoes, ON UPDATE CASCADE) waits for a dba.
blast_holds contains {
	"rule": "blast.effect",
	"reason": blast_effect_reason(t),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	input.effect.measured == true
	some t in input.effect.tables
	is_object(t)
	blast_effect_over(t)
}

# A write this large is one no single person should let through alone: approvals.rego
# needs two approvers for what this rule holds.
blast_holds contains {
	"rule": "blast.large_effect",
	"reason": sprintf("would change %d rows of %s: a write this large needs two approvers", [t.inserted + t.updated + t.deleted, t.table]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	input.effect.measured == true
	some t in input.effect.tables
	is_object(t)
	t.inserted + t.updated + t.deleted > blast_limit.large_rows
}

blast_holds contains {
	"rule": "blast.effect_unknown",
	"reason": sprintf("what the write changes cannot be measured: %s", [input.effect.unavailable]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	input.effect.measured == false
	is_string(input.effect.unavailable)
}

# A table emptied a little at a time: the rows this identity's measured writes that
# stood without an approval deleted of it within the hour (input.activity's `deleted`,
# by "target:table"), with this write's, over the same limits: their rows, or their share
# of the table as it was before the first of them (this write's size plus what they
# deleted). Updates are not summed (one row updated twice would count twice). Counted
# as each write is recorded: a write decided before the last one's record is counted is
# judged without it. A rule of the decision's live part (tollgate.rego): it reads the
# activity, which the cached part may not.
live_holds contains x if {
	activity_tracked
	some x in blast_split_holds
}

blast_split_holds contains {
	"rule": "blast.split",
	"reason": sprintf("would delete %d rows of %s, after %d rows of it this identity deleted within the hour%s", [t.deleted, t.table, blast_deleted_before(t), blast_split_of(t)]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	input.effect.measured == true
	some t in input.effect.tables
	is_object(t)
	t.deleted > 0
	not blast_effect_over(t)
	blast_split_over(t)
}

blast_deleted_before(t) := object.get(input, ["activity", "identity", "hour", "deleted", sprintf("%s:%s", [input.target.name, t.table])], 0)

blast_split_over(t) if {
	before := blast_deleted_before(t)
	before > 0
	before + t.deleted > blast_limit.rows
}

blast_split_over(t) if {
	before := blast_deleted_before(t)
	before > 0
	total := before + t.deleted
	total > blast_limit.floor
	is_number(t.table_rows)
	total * 100 > blast_limit.percent * (t.table_rows + before)
}

blast_split_of(t) := sprintf(" (a table of about %d rows)", [t.table_rows + blast_deleted_before(t)]) if {
	is_number(t.table_rows)
} else := ""

blast_effect_over(t) if t.inserted + t.updated + t.deleted > blast_limit.rows

blast_effect_over(t) if {
	t.updated + t.deleted > blast_limit.floor
	is_number(t.table_rows)
	t.table_rows > 0
	(t.updated + t.deleted) * 100 > blast_limit.percent * t.table_rows
}

blast_effect_reason(t) := sprintf("would %s of %s%s", [concat(" and ", blast_effect_counts(t)), t.table, blast_effect_through(t)])

blast_effect_counts(t) := [sprintf("%s %d rows", [verb, n]) |
	some [verb, n] in [["insert", t.inserted], ["update", t.updated], ["delete", t.deleted]]
	n > 0
]

blast_effect_through(t) := sprintf(" (through a cascade, trigger or view from %s)", [concat(", ", input.effect.written)]) if {
	count(input.effect.written) > 0
	not t.table in input.effect.written
} else := sprintf(" (a table of %d rows)", [t.table_rows]) if {
	is_number(t.table_rows)
} else := ""

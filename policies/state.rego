# What an agent may not change of the database's own state, which no reading of a later
# statement's text can see: the pack's line beside the database's roles (roles.rego),
# so that each holds on its own. A constraint added with ON DELETE CASCADE makes a later
# write reach rows its text does not name (a view, rule or trigger does too: the write's
# measured effect judges those, blast.rego); ANALYZE steers the planner's estimate of
# every later write; the statistics views hold a column's values
# (most common values, histograms) unmasked; a session-level advisory lock (MySQL's
# GET_LOCK, which no privilege guards), held across transactions, stalls every other
# session; setval moves a sequence others draw from.
package tollgate

import rego.v1

denials contains x if {
	sql_exchange
	some x in state_denials
}

state_denials contains {"rule": "sql.state", "reason": "ALTER TABLE ... ADD CONSTRAINT: a constraint (a foreign key ON DELETE CASCADE) can make later writes reach other tables"} if {
	not dba
	some s in sql_statements
	"add_constraint" in array_or_empty(s.alter_actions)
}

state_analyzes := "ANALYZE: the statistics it writes steer the planner's estimate of every later write"

# ANALYZE, and the ANALYZE a VACUUM ANALYZE, VACUUM (ANALYZE) or ANALYSE holds, which the
# reader gives as an `analyze` nested right after its `vacuum`: the same statistics written.
state_denials contains {"rule": "sql.state", "reason": concat("", [state_vacuum(i), state_analyzes])} if {
	not dba
	some i, s in sql_statements
	s.kind == "analyze"
}

state_vacuum(i) := "VACUUM " if {
	sql_statements[i].nested
	sql_statements[i - 1].kind == "vacuum"
} else := ""

state_denials contains {"rule": "sql.state", "reason": sprintf("%s holds the planner's statistics, columns' values unmasked", [t])} if {
	not dba
	some s in sql_statements
	some t in array_or_empty(s.tables)
	is_string(t)
	state_statistics_table(t)
}

state_denials contains {"rule": "sql.state", "reason": sprintf("%s takes an advisory lock, which can stall every other session", [f])} if {
	not dba
	some s in sql_statements
	some f in array_or_empty(s.functions)
	is_string(f)
	state_lock(f)
}

state_lock(f) if regex.match(`^pg_(try_)?advisory(_xact)?_lock(_shared)?$`, f)

# MySQL's and MariaDB's named locks, which no privilege guards.
state_lock(f) if f == "get_lock"

state_denials contains {"rule": "sql.state", "reason": "setval moves a sequence other sessions draw from"} if {
	not dba
	some s in sql_statements
	"setval" in array_or_empty(s.functions)
}

state_statistics_table(t) if {
	name := regex.replace(lower(t), `^pg_catalog\.`, "")
	name in {"pg_stats", "pg_statistic", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic_ext_data"}
}

# PostgreSQL's wire protocol (targets of protocol postgres). Each statement is decided
# by sql.rego on input.sql, as on sql-http targets, and masked by tollgate.rego's mask
# (column names are the field names); input.postgres is the session it runs in. What
# belongs to the wire alone is decided here.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (postgres_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
postgres_exchange if input.postgres != null

denials contains x if {
	postgres_exchange
	some x in postgres_denials
}

# The fast-path FunctionCall names a function by its OID, with no SQL to read: refused.
postgres_denials contains {"rule": "postgres.function_call", "reason": "a FunctionCall message names a function by OID, with no SQL to judge"} if {
	input.postgres.message == "function_call"
}

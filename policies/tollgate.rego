# Tollgate's default policy pack: the decision for every exchange.
#
# The contract (../shared/DESIGN.md, "The policy contract"): tollgate evaluates
# `data.tollgate.decision` with the exchange as `input` and expects
#   {"action": "allow" | "deny" | "hold", "reasons": [...], "rules": [...]}
# plus optional "status", "mask", "approvers", "hold_seconds". Anything else —
# an undefined result, an error, another shape — is refused as "policy error".
#
# This pack stays inside what both regorus (the embedded engine) and OPA agree
# on: no io.jwt.*, crypto.* or net.* builtins.
package tollgate

import rego.v1

default decision := {"action": "allow", "reasons": [], "rules": []}

decision := {
	"action": "deny",
	"reasons": [sprintf("destructive SQL: %s", [kind]) | some kind in sort(destructive_sql)],
	"rules": ["sql.destructive"],
} if {
	count(destructive_sql) > 0
}

# Where SQL text travels in a request: a JSON body's "sql" field, a plain-text
# body, or a `?sql=` query parameter (Datasette's convention).
sql_texts contains text if {
	text := input.request.body.sql
	is_string(text)
}

sql_texts contains input.request.body if is_string(input.request.body)

sql_texts contains text if {
	values := input.request.query.sql
	is_collection(values) # iterating a string or a number is an error on some engines
	some text in values
	is_string(text) # a number here would be a type error in regex.match
}

is_collection(x) if is_array(x)

is_collection(x) if is_object(x)

# A crude keyword match over raw text, kept only until the SQL interpreter fills
# `input.sql.statements` with parsed statements. It errs towards refusing: any
# text with the word DROP or TRUNCATE is treated as destructive.
#
# The word boundary is spelled out in ASCII rather than written \b: regorus's \b
# is Unicode-aware and OPA's (RE2) is not, so `éDROP` would be allowed by one
# engine and refused by the other. Here both refuse it.
destructive_keywords := {"DROP", "TRUNCATE"}

destructive_sql contains keyword if {
	some text in sql_texts
	some keyword in destructive_keywords
	regex.match(sprintf(`(^|[^A-Za-z0-9_])(?i:%s)([^A-Za-z0-9_]|$)`, [keyword]), text)
}

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

sql_texts contains text if some text in input.request.query.sql

# A crude keyword match over raw text, kept only until the SQL interpreter fills
# `input.sql.statements` with parsed statements. It errs towards refusing: any
# text with the word DROP or TRUNCATE is treated as destructive.
destructive_keywords := {"DROP", "TRUNCATE"}

destructive_sql contains keyword if {
	some text in sql_texts
	some keyword in destructive_keywords
	regex.match(sprintf(`(?i)\b%s\b`, [keyword]), text)
}

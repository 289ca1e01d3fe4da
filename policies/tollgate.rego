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

# Refusals are collected in `denials` ({"rule", "reason"}): any file of package
# tollgate adds to it, and one decision follows. No denial: allowed, masked as
# `mask` says.
decision := {
	"action": "deny",
	"reasons": sort([d.reason | some d in denials]),
	"rules": sort(denied_rules),
} if {
	count(denials) > 0
}

decision := {"action": "allow", "reasons": [], "rules": [], "mask": mask} if {
	count(denials) == 0
}

denied_rules contains d.rule if some d in denials

denials contains {"rule": "sql.destructive", "reason": sprintf("destructive SQL: %s", [kind])} if {
	some kind in destructive_sql
}

# What a caller may see of what passes. Anyone but the `privileged` group gets
# every detector (cards, SSNs, IBANs, e-mails, phones, keys, tokens...) and the
# sensitive JSON fields masked; `privileged` sees personal data, never credentials.
# A target labelled `masking: "off"` is left alone (a target that carries no data,
# configured without inspecting responses: a mask there would refuse everything).
default mask := {"detectors": ["all"], "strategy": "redact"}

mask := {"detectors": credential_detectors, "fields": credential_fields, "strategy": "redact"} if {
	"privileged" in input.identity.groups
	not masking_off
}

mask := {} if masking_off

masking_off if input.target.labels.masking == "off"

# JSON keys whose values are masked whole for the privileged: credentials only
# (everyone else gets tollgate's default key-name rules, ssn and card_number too).
credential_fields := [
	"password", "passwd", "pwd", "passphrase", "secret", "client_secret", "token",
	"access_token", "refresh_token", "id_token", "session_token", "auth_token", "api_key",
	"x-api-key", "private_key", "authorization", "aws_secret_access_key",
]

credential_detectors := [
	"aws_access_key_id", "aws_secret_key", "github_token", "gitlab_token", "slack_token",
	"stripe_key", "openai_key", "jwt", "private_key", "connection_password",
]

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

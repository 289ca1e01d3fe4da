# Tollgate's default policy pack: the decision for every exchange.
#
# The contract (docs/policies.md, policies/input.schema.json): tollgate evaluates
# `data.tollgate.decision` with the exchange as `input` and expects
#   {"action": "allow" | "deny" | "hold", "reasons": [...], "rules": [...]}
# plus optional "status", "mask", "approvers", "hold_seconds", "grant",
# "grant_minutes", "alerts", "database_role", "statement_timeout_seconds". Anything else — an undefined result, an error, another
# shape — is refused as "policy error".
#
# The rules live beside this file, one file per protocol (sql.rego, k8s.rego,
# llm.rego, mcp.rego, http.rego, egress.rego for the egress proxy; identity.rego names the
# groups they branch on, shell.rego what makes a shell command destructive), and
# decide on what the protocol interpreters read a request to mean (input.sql, input.k8s, input.llm, input.mcp), never on regexes over raw
# bytes. This pack stays inside what both regorus (the embedded engine) and OPA
# agree on: no io.jwt.*, crypto.* or net.* builtins.
package tollgate

import rego.v1

# Refusals are collected in `denials` and requests that wait for a human in
# `holds` ({"rule", "reason", "approvers", "seconds"}): any file of package
# tollgate adds to them, and one decision follows. A denial wins over a hold;
# nothing in either: allowed, masked as `mask` says. A held request, once
# approved, passes masked as `mask` says too. Each approval lets its one request
# through (grant `once`, the default).
decision := with_alerts({
	"action": "deny",
	"reasons": sort([d.reason | some d in denials]),
	"rules": sort(denied_rules),
}) if {
	count(denials) > 0
}

decision := with_alerts(with_role({
	"action": "hold",
	"reasons": sort([h.reason | some h in holds]),
	"rules": sort(held_rules),
	"approvers": sort(approvers),
	"hold_seconds": min({h.seconds | some h in holds}),
	"mask": with_derived(mask),
})) if {
	count(denials) == 0
	count(holds) > 0
}

decision := with_alerts(with_role({"action": "allow", "reasons": [], "rules": [], "mask": with_derived(mask)})) if {
	count(denials) == 0
	count(holds) == 0
}

# Whether a response can change the decision for the target in `input.target` (the only
# field set when tollgate asks, once per target and policy revision). Where it is false,
# tollgate does not decide that target's responses, nor parse their bodies for the policy:
# the request's decision, mask included, stands for them. Only llm.rego reads responses
# (a model's tool calls and errors); a rule that reads `input.response` or `input.phase`
# for other targets must make this true for them. Leaving the rule out decides every
# response. On mcp targets tollgate decides what a server sends the client (its requests,
# the tools a tools/list shows) whatever this says: mcp.rego needs no response decided.
default decides_responses := false

decides_responses if input.target.protocol == "llm"

denied_rules contains d.rule if some d in denials

# The alerts this exchange raises, whatever the decision: `data.tollgate.alerts`, a set of
# {"rule", "severity", "message"} any file of the package extends (activity.rego's), in
# order, in the decision's "alerts" when there are any. Read by its full path, so the pack
# decides without any file defining it. No rule of `denials` or `holds` may read it (it
# reads them).
with_alerts(d) := object.union(d, {"alerts": alert_list}) if {
	count(alert_list) > 0
} else := d

alert_list := sort([a | some a in data.tollgate.alerts])

# A database session's login carries the role it runs as and how long one of its
# statements may run (roles.rego).
with_role(d) := object.union(d, {t[0]: t[1] | some t in login_terms}) if {
	count(login_terms) > 0
} else := d

held_rules contains h.rule if some h in holds

approvers contains a if {
	some h in holds
	some a in h.approvers
}

# What a caller may see of what passes. Anyone but the `privileged` group gets
# every detector (cards, SSNs, IBANs, e-mails, phones, keys, tokens...) and the
# sensitive JSON fields masked; `privileged` sees personal data, never credentials.
# A target labelled `masking: "off"` is left alone (a target that carries no data,
# configured without inspecting responses: a mask there would refuse everything),
# and so is a Kubernetes port-forward: its bytes are a tunnel tollgate does not read
# (an exec's and an attach's output is read, and masked as an SSH command's is).
# In what the agent is told to do (a model's tool-call arguments), `actions` leaves
# the addresses an action needs (a URL's, a recipient's: e-mails, phones, IPs) and
# masks credentials, cards, SSNs and IBANs, which no action needs. Those addresses the
# model can only have seen masked: prompts are masked as data.
mask := {} if {
	unmasked
} else := {"detectors": credential_detectors, "fields": credential_fields, "strategy": "redact"} if {
	"privileged" in groups
} else := {"detectors": ["all"], "actions": action_detectors, "strategy": "redact"}

# `unmasked` (no mask at all) is lineage.rego's: its derived columns follow it too, and a
# rule of its own used here keeps the files' dependency one way (a cycle cannot be loaded
# into OPA in any order).

# JSON keys whose values are masked whole for the privileged: credentials only
# (everyone else gets tollgate's default key-name rules, ssn and card_number too).
credential_fields := [
	"password", "passwd", "pwd", "passphrase", "secret", "client_secret", "token",
	"access_token", "refresh_token", "id_token", "session_token", "auth_token", "api_key",
	"x-api-key", "private_key", "authorization", "aws_secret_access_key",
]

credential_detectors := [
	"aws_access_key_id", "aws_secret_key", "github_token", "gitlab_token", "slack_token",
	"stripe_key", "openai_key", "jwt", "private_key", "connection_password", "vendor_key",
	"generic_secret",
]

action_detectors := array.concat(credential_detectors, ["credit_card", "us_ssn", "iban"])

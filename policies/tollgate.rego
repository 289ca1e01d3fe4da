# Tollgate's default policy pack: the decision for every exchange.
#
# The contract (docs/policies.md, policies/input.schema.json): tollgate evaluates
# `data.tollgate.decision` with the exchange as `input` and expects
#   {"action": "allow" | "deny" | "hold", "reasons": [...], "rules": [...]}
# plus optional "status", "mask", "approvers", "hold_seconds", "grant",
# "grant_minutes", "approvals_needed", "alerts", "database_role",
# "statement_timeout_seconds", "moderated", "inspect". Anything else — an undefined result, an
# error, another shape — is refused as "policy error".
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
#
# The decision comes in two parts (docs/policies.md, "Cached and live"), which
# tollgate evaluates apart and combines by one rule (the stricter action wins; the
# winners' reasons and rules together; the holds' approvers together, the shortest
# wait; the mask and role of what passes):
# - `cached`: `denials`, `holds` and `data.tollgate.alerts`, which read only the input
#   paths `reads` lists, and neither activity nor time. Tollgate evaluates it on the
#   input cut down to those paths and keeps its answer by them.
# - `live`: `live_denials`, `live_holds` and `live_alerts` (activity.rego's, and the
#   alerts that name the outcome), on every exchange, with the cached part's answer as
#   input.cached. Its rules name the outcome through activity.rego's `outcome_refused`
#   and `outcome_held`, never by reading `denials` or `holds`.
# `decision` is both in one, as the combination gives it, for an engine or a tool that
# asks for it alone (OPA with its query, `tollgate policy eval`).
decision := verdict(denials | live_denials, holds | live_holds, array.concat(cached_alerts, live_alert_list), true)

cached := verdict(denials, holds, cached_alerts, true)

live := verdict(live_denials, live_holds, live_alert_list, false)

# One decision of denials, holds and alerts; `passes`: with the mask and role of what
# passes (the live part leaves them to the cached part).
verdict(ds, hs, raised, passes) := with_alerts(raised, with_status(ds, {
	"action": "deny",
	"reasons": sort([d.reason | some d in ds]),
	"rules": sort({d.rule | some d in ds}),
})) if {
	count(ds) > 0
} else := with_alerts(raised, passing(passes, with_grant(hs, with_quorum(hs, {
	"action": "hold",
	"reasons": sort([h.reason | some h in hs]),
	"rules": sort({h.rule | some h in hs}),
	"approvers": sort({a | some h in hs; some a in h.approvers}),
	"hold_seconds": min({h.seconds | some h in hs}),
})))) if {
	count(hs) > 0
} else := with_alerts(raised, passing(passes, {"action": "allow", "reasons": [], "rules": []}))

passing(false, d) := d

# A hold that a rule of approvals.rego's table holds needs that many approvers (the most
# any of its rules needs); others need one, and say nothing.
with_quorum(hs, d) := object.union(d, {"approvals_needed": n}) if {
	n := max({object.get(approvals_needed_by_rule, h.rule, 1) | some h in hs})
	n > 1
} else := d

# A hold all of whose rules approvals.rego's `grant_minutes_by_rule` names opens a window
# once approved (grant `window`), for the fewest minutes any of them gives; any other
# rule among them keeps it to this one request (`once`, said by saying nothing).
with_grant(hs, d) := object.union(d, {"grant": "window", "grant_minutes": m}) if {
	count({h | some h in hs; not grant_minutes_by_rule[h.rule]}) == 0
	m := min({grant_minutes_by_rule[h.rule] | some h in hs})
} else := d

# A denial may name its HTTP status (`"status": 503`: what could not be decided now, as
# the store of shared counts not answering, may be tried again): the decision's is the
# lowest of its denials' (403 for one that names none), so that a refusal on the merits
# is never told as one to retry.
with_status(ds, d) := object.union(d, {"status": s}) if {
	s := min({object.get(x, "status", 403) | some x in ds})
	s != 403
} else := d

passing(true, d) := with_moderator(with_terms(object.union(d, {"mask": with_derived(mask)})))

# What the cached part reads of the input: every path its rules read, and nothing that
# changes between two exchanges alike (a statement's text, a request's body, a token's
# jti). `tollgate policy test` fails naming a path the cached part reads and this
# misses.
reads := [
	"target",
	"phase",
	"identity.authenticated",
	"identity.sub",
	"identity.groups",
	"request.method",
	"request.path",
	"request.query",
	"request.headers.impersonate-*",
	"sql.dialect",
	"sql.error",
	"sql.multiple",
	"sql.unread_write",
	"sql.statements[*].kind",
	"sql.statements[*].object",
	"sql.statements[*].tables",
	"sql.statements[*].has_where",
	"sql.statements[*].functions",
	"sql.statements[*].nested",
	"sql.statements[*].program",
	"sql.statements[*].alter_actions",
	"sql.statements[*].settings",
	"sql.statements[*].effects",
	"sql.statements[*].bounded",
	"sql.statements[*].columns",
	"sql.statements[*].stores",
	"sql.statements[*].estimate",
	"k8s",
	"llm.api",
	"llm.error",
	"llm.finish_reason",
	"llm.model",
	"llm.stream",
	"llm.tool_calls",
	"llm.tools",
	"mcp.call",
	"mcp.content",
	"mcp.error",
	"mcp.from",
	"mcp.kind",
	"mcp.method",
	"mcp.params",
	"mcp.probe",
	"mcp.prompt",
	"mcp.resource",
	"mcp.tool",
	"mcp.transport",
	"postgres.application_name",
	"postgres.database",
	"postgres.database_role",
	"postgres.message",
	"postgres.role",
	"postgres.roles",
	"postgres.transaction_status",
	"postgres.tls",
	"mysql.command",
	"mysql.database",
	"mysql.database_role",
	"mysql.kill",
	"mysql.roles",
	"mysql.tls",
	"mysql.user",
	"egress",
	"ssh",
	"approval",
	"effect",
	"response.status",
]

# What the live part reads, beside input.cached (the cached part's action, reasons and
# rules): what activity.rego's rules (and blast.rego's blast.split) read of the counts,
# and what their messages name.
live_reads := [
	"activity.status",
	"activity.aggregated",
	"activity.exchange.administrative",
	"activity.identity.hour.deleted",
	"activity.identity.hour.masked",
	"activity.identity.minute.refusals",
	"activity.token.seen.addresses",
	"activity.token.seen.environments",
	"activity.live",
	"budget",
	"flow",
	"target",
	"phase",
	"identity.sub",
	"identity.jti",
	"identity.groups",
	"source",
	"request.method",
	"sql.statements[*].kind",
	"sql.statements[*].effects",
	"mysql.kill",
	"egress",
	"effect",
	"mcp.method",
	"mcp.params.name",
]

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

# The alerts this exchange raises, whatever the decision: `data.tollgate.alerts` (the
# cached part's) and `live_alerts`, sets of {"rule", "severity", "message"} any file of
# the package extends, in order, in the decision's "alerts" when there are any. Read by
# their full path, so the pack decides without any file defining them. No rule of
# `denials` or `holds` may read them (they may read those).
with_alerts(raised, d) := object.union(d, {"alerts": sort(raised)}) if {
	count(raised) > 0
} else := d

cached_alerts := [a | some a in data.tollgate.alerts]

live_alert_list := [a | some a in data.tollgate.live_alerts]

# The terms of what passes: a database session's login carries the role it runs as and
# how long one of its statements may run (roles.rego); a tunnel through the egress proxy,
# whether tollgate reads inside it (egress.rego).
with_terms(d) := object.union(d, {t[0]: t[1] | some t in passing_terms}) if {
	count(passing_terms) > 0
} else := d

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
# model can only have seen masked: prompts are masked as data. A target labelled
# `masking_model` also has the local NER model read its free text (below).
mask := {} if {
	unmasked
} else := {"detectors": credential_detectors, "fields": credential_fields, "strategy": "redact"} if {
	"privileged" in groups
} else := object.union(
	{"detectors": ["all"], "actions": action_detectors, "strategy": "redact"},
	model_mask,
)

# `masking_model: "names"` (people's names in sentences, which no key names), or
# "addresses", or "names,addresses": the kinds the model finds on this target (the
# process must load it: config masking.model). A word not listed passes as it is, and
# tollgate refuses the mask as a policy error rather than mask less than asked.
model_mask := {"model": [object.get(model_kinds, trim_space(word), trim_space(word)) |
	some word in split(input.target.labels.masking_model, ",")
]} if {
	input.target.labels.masking_model != ""
} else := {}

model_kinds := {"names": "person", "addresses": "address"}

# `unmasked` (no mask at all) is lineage.rego's: its derived columns follow it too, and a
# rule of its own used here keeps the files' dependency one way (a cycle cannot be loaded
# into OPA in any order).

# JSON keys, headers, query parameters and cookies whose values are masked whole for
# the privileged: the credentials of tollgate's one table of names (everyone else gets
# all of it, ssn and card_number too).
credential_fields := ["@credentials"]

# `undecoded`: what the masker could not decode within its bounds may hold credentials too.
credential_detectors := [
	"aws_access_key_id", "aws_secret_key", "github_token", "gitlab_token", "slack_token",
	"stripe_key", "openai_key", "jwt", "private_key", "connection_password", "vendor_key",
	"generic_secret", "undecoded",
]

action_detectors := array.concat(credential_detectors, ["credit_card", "us_ssn", "iban"])

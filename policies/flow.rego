# What an agent read decides what it may do next (input.flow, docs/flows.md).
#
# input.flow says what the identity, and the agent run (the trace the agent sent), received
# that may steer it: answers of targets marked `untrusted` (the open web through egress,
# by default) and answers in which the instructions reader found words aimed at the model
# (extproc/activity/flow.py). Tollgate notes each before the agent reads it, and reads the
# notes for a request that can act on them; elsewhere `status` is "unread".
#
# After untrusted content, what would do harm were the content steering the agent waits
# for a human, who is told which answers came before (their targets and traces, which
# the record and the approval page link to):
# - a statement that destroys, changes the schema, privileges or the server, or that
#   deletes, updates or merges rows (an INSERT, which adds, passes);
# - a request through egress to a destination this identity never reached before, after
#   an answer in which the reader found words to the model (after a page alone, browsing
#   to the next site would wait);
# - an MCP tool call, after untrusted content of another server or target.
# The agent run's notes decide where the agent sends its trace (another run's page does
# not hold this one); the identity's otherwise. A reading the store did not give
# ("unknown") refuses those same requests with 503: try again.
#
# Live rules (tollgate.rego): they add to `live_holds` and `live_denials`.
package tollgate

import rego.v1

flow_approvers := ["group:security"]

flow_seconds := 600

# What came before, newest first: the run's where the agent sent a trace.
flow_untrusted := input.flow.this_run.untrusted if {
	is_object(input.flow.this_run)
} else := input.flow.identity.untrusted if {
	input.flow.status == "known"
} else := []

flow_changing_effects := {"destroy", "schema", "privilege", "server", "configuration"}

flow_changing_kinds := {"delete", "update", "merge", "truncate", "drop"}

# What the request would do, in words, were it steered: one entry per act.
flow_acts contains sprintf("%s statement", [upper(s.kind)]) if {
	some s in input.sql.statements
	is_string(s.kind)
	flow_changing_statement(s)
}

# Browsing goes from page to page (pip from its index to its file host): a first
# destination waits only after an answer that spoke to the model.
flow_acts contains sprintf("a first request to %s", [egress_destination]) if {
	input.target.protocol == "egress"
	not input.egress.seen.identity == true
	some n in flow_untrusted
	n.cause == "instructions"
}

flow_acts contains sprintf("a call of %s on %s", [flow_tool, input.target.name]) if {
	input.target.protocol == "mcp"
	input.mcp.method == "tools/call"
}

flow_changing_statement(s) if s.kind in flow_changing_kinds

flow_changing_statement(s) if {
	some effect in s.effects
	effect in flow_changing_effects
}

flow_tool := input.mcp.params.name if {
	is_string(input.mcp.params.name)
} else := "a tool"

# The answers that came before and count: on an MCP server, another server's (its own
# answers are what the agent called it for).
flow_counted := [n |
	some n in flow_untrusted
	flow_elsewhere(n)
]

flow_elsewhere(_) if not input.target.protocol == "mcp"

flow_elsewhere(n) if n.target != input.target.name

# The answers that came before, newest first, as the approver reads them.
flow_before := concat("; ", [sprintf("%s from %s (trace %s)", [flow_cause_words(n), n.target, n.trace_id]) |
	some n in array.slice(flow_counted, 0, 3)
])

flow_cause_words(n) := sprintf("words to the model (%s)", [concat(", ", n.kinds)]) if {
	n.cause == "instructions"
} else := "untrusted content"

live_holds contains {
	"rule": "flow.after_untrusted",
	"reason": sprintf("%s after the agent read %s", [act, flow_before]),
	"approvers": flow_approvers,
	"seconds": flow_seconds,
} if {
	count(flow_counted) > 0
	some act in flow_acts
}

live_denials contains {
	"rule": "flow.unknown",
	"reason": sprintf("what %s read before cannot be told (the store of what agents received does not answer), and %s would wait for a human after untrusted content: try again", [activity_who, act]),
	"status": 503,
} if {
	input.flow.status == "unknown"
	some act in flow_acts
}

# A protected value the identity or run received unmasked (an e-mail, a card, an SSN, a
# key: input.flow.carries, by keyed fingerprint), carried out to a target other than
# every one it came from, is refused: the reason names the value's kind and origin,
# never the value. A target labelled `flow_carried: "hold"` holds such a request for a
# human instead; `flow_carried: "allow"` lets values go there (a model the deployment
# runs itself, a second copy of the same database).
flow_carried_here contains c.value if {
	some c in input.flow.carries
	c.from == input.target.name
}

flow_carried contains c if {
	some c in input.flow.carries
	not c.value in flow_carried_here
}

flow_carried_reason := sprintf("this request carries %s that %s received unmasked elsewhere, which may not leave to %s: %s", [
	flow_values_words(count({c.value | some c in flow_carried})), activity_who, input.target.name,
	concat("; ", sort({sprintf("%s from %s (trace %s)", [c.kind, c.from, c.trace_id]) | some c in flow_carried})),
])

flow_carried_action := "hold" if {
	input.target.labels.flow_carried == "hold"
} else := "allow" if {
	input.target.labels.flow_carried == "allow"
} else := "deny"

live_denials contains {"rule": "flow.carried", "reason": flow_carried_reason} if {
	count(flow_carried) > 0
	flow_carried_action == "deny"
}

live_holds contains {
	"rule": "flow.carried",
	"reason": flow_carried_reason,
	"approvers": flow_approvers,
	"seconds": flow_seconds,
} if {
	count(flow_carried) > 0
	flow_carried_action == "hold"
}

flow_values_words(1) := "a protected value"

flow_values_words(n) := sprintf("%d protected values", [n]) if n > 1

# LLM calls (targets of protocol llm): a model's tool call is refused before the
# agent runs it when its arguments carry a destructive shell command (shell.rego) or
# SQL — read as commands (argv) and parsed statements, not matched as text.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (llm_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
llm_exchange if input.target.protocol == "llm"

llm_exchange if input.llm != null

denials contains x if {
	llm_exchange
	some x in llm_denials
}

holds contains x if {
	llm_exchange
	some x in llm_holds
}

# The model's tool calls as objects, whatever shape input.llm arrives in.
tool_calls := [c | some c in input.llm.tool_calls; is_object(c)] if {
	is_array(input.llm.tool_calls)
} else := []

llm_denials contains {
	"rule": "llm.destructive_tool_call",
	"reason": sprintf("tool call %s: %s", [tool_name(call), what]),
} if {
	some call in tool_calls
	some what in destructive_in(call)
}

# A tool call that reads or writes a credential file (credentials.rego: `cat
# ~/.aws/credentials`, `{"path": ".env"}`, `echo key >> ~/.ssh/authorized_keys`), or
# archives a folder holding them (`tar czf - ~`), for everyone.
llm_denials contains {
	"rule": "llm.credential",
	"reason": sprintf("tool call %s: %s", [tool_name(call), what]),
} if {
	some call in tool_calls
	some what in credentials_in_call(call)
}

# A field missing from a hand-built call is empty, never a reason to skip the rule.
credentials_in_call(call) := credentials_in_commands(
	object.get(call, "commands", []), object.get(call, "opaque", []),
	object.get(call, "writes", []), array_or_empty(object.get(call, "texts", [])), false,
)

# An answer whose tool calls arrive in no readable shape cannot be judged.
llm_denials contains {"rule": "llm.unread", "reason": "the model's tool calls were not read (input.llm.tool_calls)"} if {
	is_object(input.llm)
	not is_array(input.llm.tool_calls)
}

# What a model's answer holds that could not be read (its request's reading carries over):
# an answer that is no JSON and no event stream, arguments past the reading's limits. What
# a client would run cannot be judged, so no agent gets it. An upstream's failure (a
# status from 400 up) is passed on as it is: no client runs a tool call from it. A request
# is not refused for it: no tool call is in there, and its answer is judged.
llm_denials contains {"rule": "llm.unreadable", "reason": sprintf("the model's answer was not read: %s", [what])} if {
	agent
	input.phase == "response"
	not upstream_failed
	some what in unread
}

unread contains input.llm.error if is_string(input.llm.error)

unread contains sprintf("tool call %s: %s", [tool_name(call), call.error]) if {
	some call in tool_calls
	is_string(call.error)
}

upstream_failed if input.response.status >= 400

# A tool call that runs what cannot be read (shell.rego, `opaque`) waits for a human,
# unless what can be read is destructive (refused above). The approvers are `dba`: the one
# group of approvers the pack knows (identity.rego) and `tollgate up` provisions. At the
# response phase no approval can come in time (the model has answered), so tollgate refuses
# it, saying why (tollgate.hold_too_late).
llm_holds contains {
	"rule": "llm.opaque_tool_call",
	"reason": sprintf("tool call %s runs what cannot be read (%s): %s", [tool_name(call), o.why, concat(" ", o.argv)]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	agent
	some call in tool_calls
	some o in opaques(call.opaque)
	tool_call_opaque_held(o)
}

tool_name(call) := call.name if {
	is_string(call.name)
} else := "(unnamed)"

destructive_in(call) := {sprintf("destructive command: %s", [concat(" ", argv)]) |
	some argv in argvs(call.commands)
	destructive_tool_command(argv)
} | {sprintf("destructive SQL: %s", [upper(s.kind)]) |
	some s in array_or_empty(call.sql)
	is_string(s.kind)
	destructive_tool_sql(s)
} | {sprintf("destructive command: %s (%s)", [concat(" ", o.argv), o.why]) |
	some o in opaques(call.opaque)
	destructive_opaque(o)
} | {sprintf("output written to %s", [path]) |
	some path in array_or_empty(call.writes)
	is_string(path)
	destroying_write(path)
} | {"SQL that does not parse" |
	some s in array_or_empty(call.sql)
	s.kind == "unparsed"
	database_tool(call)
}

destructive_tool_command(argv) if destructive_command(argv)

destructive_tool_command(argv) if stdin_shell(argv)

destructive_tool_sql(s) if destructive_statement(s)

destructive_tool_sql(s) if s.kind in {"copy", "do"}

destructive_tool_sql(s) if unbounded_write(s)

destructive_tool_sql(s) if {
	some effect in statement_effects(s)
	effect in refused_effects
}

# Text that starts like SQL but does not parse is refused only where a tool runs SQL:
# elsewhere ("Update on the project", an e-mail subject) it is prose.
database_tool(call) if not is_string(object.get(call, "name", null))

database_tool(call) if {
	is_string(call.name)
	regex.match(`(?i)(sql|query|database|^db_|_db$|postgres|mysql|sqlite)`, call.name)
}

# LLM calls (targets of protocol llm): a model's tool call is refused before the
# agent runs it when its arguments carry a destructive shell command (shell.rego) or
# SQL — read as commands (argv) and parsed statements, not matched as text.
package tollgate

import rego.v1

# The model's tool calls as objects, whatever shape input.llm arrives in.
tool_calls := [c | some c in input.llm.tool_calls; is_object(c)] if {
	is_array(input.llm.tool_calls)
} else := []

denials contains {
	"rule": "llm.destructive_tool_call",
	"reason": sprintf("tool call %s: %s", [tool_name(call), what]),
} if {
	some call in tool_calls
	some what in destructive_in(call)
}

# An answer whose tool calls arrive in no readable shape cannot be judged.
denials contains {"rule": "llm.unread", "reason": "the model's tool calls were not read (input.llm.tool_calls)"} if {
	is_object(input.llm)
	not is_array(input.llm.tool_calls)
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
	s.kind == "create"
	s.object in routine_objects
}

# Text that starts like SQL but does not parse is refused only where a tool runs SQL:
# elsewhere ("Update on the project", an e-mail subject) it is prose.
database_tool(call) if not is_string(object.get(call, "name", null))

database_tool(call) if {
	is_string(call.name)
	regex.match(`(?i)(sql|query|database|^db_|_db$|postgres|mysql|sqlite)`, call.name)
}

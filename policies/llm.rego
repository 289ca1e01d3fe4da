# LLM calls (targets of protocol llm): a model's tool call is refused before the
# agent runs it when its arguments carry a destructive shell command or SQL —
# read as commands (argv) and parsed statements, not matched as text.
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
	some argv in array_or_empty(call.commands)
	is_array(argv)
	every arg in argv { is_string(arg) }
	destructive_command(argv)
} | {sprintf("destructive SQL: %s", [upper(s.kind)]) |
	some s in array_or_empty(call.sql)
	is_string(s.kind)
	destructive_tool_sql(s)
} | {"SQL that does not parse" |
	some s in array_or_empty(call.sql)
	s.kind == "unparsed"
	database_tool(call)
}

destructive_tool_sql(s) if destructive_statement(s)

destructive_tool_sql(s) if s.kind in {"copy", "do"}

destructive_tool_sql(s) if unbounded_write(s)

destructive_tool_sql(s) if {
	s.kind == "create"
	s.object in routine_objects
}

# rm, recursive, at the root, a home, a system directory, or everything here.
destructive_command(argv) if {
	argv[0] == "rm"
	some flag in argv
	recursive_rm_flag(flag)
	some path in argv
	rm_target(path)
}

# GNU getopt takes any unambiguous prefix of a long option (`--rec`, `--r`).
recursive_rm_flag(flag) if regex.match(`^--r(e(c(u(r(s(i(v(e)?)?)?)?)?)?)?)?$`, flag)

recursive_rm_flag(flag) if regex.match(`^-[A-Za-z]*[rR][A-Za-z]*$`, flag)

rm_target(path) if path in {"*", ".", "..", "./*", "../*"}

rm_target(path) if system_path(path)

# The root, a home or a system directory, however spelled (`//`, `/./`, a trailing `/`,
# a glob or a variable the shell would expand there: `/?*`, `$HOME`, `$(echo /)`).
system_path(path) if normal_path(path) in system_paths

system_path(path) if regex.match(`^(/+|~|\$\{?HOME\}?)[^/]*[*?\[]`, path)

system_path(path) if regex.match("^[^/]*(\\$|`)", path)

# `..` below an absolute path can climb anywhere: `/tmp/../etc`.
system_path(path) if regex.match(`^(/|~).*/\.\.(/|$)`, path)

system_paths := {
	"/", "/*", "~", "~/*", "$HOME", "${HOME}", "$HOME/*", "${HOME}/*", "/home", "/etc",
	"/usr", "/var", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/root", "/srv",
	"/dev", "/proc", "/sys", "/var/lib", "/var/log", "/usr/local", "/home/*",
}

normal_path(path) := "/" if {
	regex.match(`^/[/.]*$`, path)
} else := trim_suffix(regex.replace(regex.replace(path, `/(\./)+`, "/"), `/+`, "/"), "/")

destructive_command(argv) if regex.match(`^(mkfs(\..+)?|mke2fs|mkswap|mkdosfs|mkntfs)$`, argv[0])

destructive_command(argv) if {
	argv[0] in {"systemctl", "loginctl"}
	some arg in argv
	arg in {"poweroff", "reboot", "halt", "kexec", "rescue", "emergency", "suspend", "hibernate"}
}

destructive_command(argv) if {
	argv[0] in {"init", "telinit"}
	some arg in argv
	arg in {"0", "6"}
}

# A shell with no script operand runs what reaches its stdin (`curl ... | sh`,
# `base64 -d | bash`, `bash <<< '...'`): a script no one here can read.
destructive_command(argv) if {
	argv[0] in {"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish"}
	every arg in array.slice(argv, 1, count(argv)) {
		startswith(arg, "-")
	}
}

destructive_command(argv) if {
	argv[0] == "dd"
	some arg in argv
	startswith(arg, "of=/dev/")
}

destructive_command(argv) if argv[0] in {"shred", "wipefs", "shutdown", "reboot", "halt", "poweroff"}

destructive_command(argv) if {
	argv[0] in {"chmod", "chown", "chgrp"}
	some flag in argv
	regex.match(`^(--recursive|-[A-Za-z]*R[A-Za-z]*)$`, flag)
	some path in argv
	system_path(path)
}

destructive_command(argv) if {
	argv[0] == "find"
	"-delete" in argv
	some path in argv
	system_path(path)
}

# The fork bomb `:(){ :|:& };:` defines a function named ":" (the shell reader gives a
# definition as ["function", name]).
destructive_command(argv) if argv == ["function", ":"]

# Text that starts like SQL but does not parse is refused only where a tool runs SQL:
# elsewhere ("Update on the project", an e-mail subject) it is prose.
database_tool(call) if not is_string(object.get(call, "name", null))

database_tool(call) if {
	is_string(call.name)
	regex.match(`(?i)(sql|query|database|^db_|_db$|postgres|mysql|sqlite)`, call.name)
}

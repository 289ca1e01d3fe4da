# Unit tests of llm.rego, on input.llm as the LLM interpreter fills it.
package tollgate_llm_test

import rego.v1

answer(calls) := {"phase": "response", "identity": {"groups": ["agents"]},
	"target": {"name": "openai", "protocol": "llm", "labels": {}},
	"request": {"method": "POST", "path": "/v1/chat/completions", "query": {}, "headers": {}, "body": null},
	"response": {"status": 200, "headers": {}, "body": null},
	"llm": {"api": "chat.completions", "model": "m", "stream": false, "messages": [], "tools": [],
		"tool_calls": calls, "finish_reason": "tool_calls", "error": null}}

shell(argv) := {"id": "call_1", "name": "run_shell", "arguments": {}, "arguments_text": "{}",
	"texts": [], "commands": [argv], "sql": []}

sql_call(s) := {"id": "call_2", "name": "run_sql", "arguments": {}, "arguments_text": "{}",
	"texts": [], "commands": [], "sql": [object.union({
		"kind": "select", "object": null, "text": "", "tables": [], "has_where": null,
		"functions": [], "nested": false, "program": null, "alter_actions": [],
	}, s)]}

test_rm_rf_root_is_refused if {
	d := data.tollgate.decision with input as answer([shell(["rm", "-rf", "/"])])
	d.rules == ["llm.destructive_tool_call"]
	d.reasons == ["tool call run_shell: destructive command: rm -rf /"]
}

test_every_spelling_of_recursive_rm_is_refused if {
	every argv in [["rm", "-r", "-f", "/"], ["rm", "--recursive", "--force", "/"], ["rm", "-fR", "/*"], ["rm", "-r", "~"]] {
		data.tollgate.decision.action == "deny" with input as answer([shell(argv)])
	}
}

test_rm_in_a_build_directory_is_allowed if {
	data.tollgate.decision.action == "allow" with input as answer([shell(["rm", "-rf", "./build"])])
}

test_other_destructive_commands_are_refused if {
	every argv in [["mkfs.ext4", "/dev/sda1"], ["dd", "if=/dev/zero", "of=/dev/sda"], ["shutdown", "-h", "now"], ["chmod", "-R", "777", "/"]] {
		data.tollgate.decision.action == "deny" with input as answer([shell(argv)])
	}
}

test_harmless_commands_are_allowed if {
	every argv in [["ls", "-la", "/"], ["echo", "rm -rf /"], ["grep", "rm", "file"]] {
		data.tollgate.decision.action == "allow" with input as answer([shell(argv)])
	}
}

test_drop_table_in_a_tool_call_is_refused if {
	d := data.tollgate.decision with input as answer([sql_call({"kind": "drop", "object": "table"})])
	d.reasons == ["tool call run_sql: destructive SQL: DROP"]
}

test_delete_without_where_in_a_tool_call_is_refused if {
	data.tollgate.decision.action == "deny" with input as answer([sql_call({"kind": "delete", "has_where": false})])
}

test_unparsed_sql_in_a_database_tool_is_refused if {
	d := data.tollgate.decision with input as answer([sql_call({"kind": "unparsed"})])
	d.reasons == ["tool call run_sql: SQL that does not parse"]
}

test_prose_that_starts_like_sql_elsewhere_is_allowed if {
	call := object.union(sql_call({"kind": "unparsed"}), {"name": "send_email"})
	data.tollgate.decision.action == "allow" with input as answer([call])
}

test_the_fork_bomb_is_refused if {
	calls := [object.union(shell(["function", ":"]), {"commands": [["function", ":"], [":"], [":"]]})]
	data.tollgate.decision.action == "deny" with input as answer(calls)
}

test_a_select_in_a_tool_call_is_allowed if {
	data.tollgate.decision.action == "allow" with input as answer([sql_call({})])
}

test_a_request_with_no_tool_calls_is_allowed if {
	data.tollgate.decision.action == "allow" with input as answer([])
}

test_tool_calls_in_no_readable_shape_are_denied if {
	every calls in [null, "rm -rf /", {"0": shell(["rm", "-rf", "/"])}] {
		d := data.tollgate.decision with input as answer(calls)
		d.rules == ["llm.unread"]
	}
}

test_a_call_without_a_name_is_judged_as_a_database_tool if {
	d := data.tollgate.decision with input as answer([object.remove(sql_call({"kind": "unparsed"}), ["name"])])
	d.reasons == ["tool call (unnamed): SQL that does not parse"]
}

test_root_and_system_paths_however_spelled_are_refused if {
	every path in ["/home/", "//", "/./", "/?*", "/e*", "$X", "$(echo /)", "/tmp/../etc", "~/", "${HOME}"] {
		data.tollgate.decision.action == "deny" with input as answer([shell(["rm", "-rf", path])])
	}
	every path in ["./build", "/tmp/build", "build/*", "/srv/app/cache"] {
		data.tollgate.decision.action == "allow" with input as answer([shell(["rm", "-rf", path])])
	}
}

test_long_option_prefixes_count if {
	every flag in ["--r", "--rec", "--recursive"] {
		data.tollgate.decision.action == "deny" with input as answer([shell(["rm", flag, "/"])])
	}
}

test_a_shell_reading_its_script_from_stdin_is_refused if {
	every argv in [["sh"], ["bash", "-s"], ["zsh", "-x", "-"]] {
		data.tollgate.decision.action == "deny" with input as answer([shell(argv)])
	}
	data.tollgate.decision.action == "allow" with input as answer([shell(["bash", "./test.sh"])])
}

test_power_and_disk_commands_are_refused if {
	every argv in [["systemctl", "poweroff"], ["loginctl", "reboot"], ["init", "6"], ["mke2fs", "/dev/sdb"], ["mkswap", "/dev/sdb2"]] {
		data.tollgate.decision.action == "deny" with input as answer([shell(argv)])
	}
	data.tollgate.decision.action == "allow" with input as answer([shell(["systemctl", "status", "nginx"])])
}

test_recursive_permission_changes_refused_on_system_paths_only if {
	data.tollgate.decision.action == "deny" with input as answer([shell(["chmod", "-Rf", "000", "/etc/"])])
	data.tollgate.decision.action == "allow" with input as answer([shell(["chmod", "-R", "u+w", "."])])
	data.tollgate.decision.action == "deny" with input as answer([shell(["find", "-L", "/", "-delete"])])
	data.tollgate.decision.action == "allow" with input as answer([shell(["find", ".", "-name", "*.pyc", "-delete"])])
}

test_a_tool_call_defining_a_routine_is_refused if {
	d := data.tollgate.decision with input as answer([sql_call({"kind": "create", "object": "function"})])
	d.reasons == ["tool call run_sql: destructive SQL: CREATE"]
}

opaque_call(argv, why) := object.union(shell(argv), {"opaque": [{"argv": argv, "why": why}]})

test_an_opaque_command_is_held_for_a_dba if {
	d := data.tollgate.decision with input as answer([opaque_call(["python3", "-c", "print(1)"], "inline_code")])
	d.action == "hold"
	d.rules == ["llm.opaque_tool_call"]
	d.approvers == ["group:dba"]
	d.reasons == ["tool call run_shell runs what cannot be read (inline_code): python3 -c print(1)"]
}

test_an_opaque_command_of_someone_not_an_agent_passes if {
	input_ := object.union(answer([opaque_call(["python3", "-c", "1"], "inline_code")]), {"identity": {"groups": ["dba"]}})
	data.tollgate.decision.action == "allow" with input as input_
}

test_opaque_operands_that_may_be_the_root_are_refused if {
	d := data.tollgate.decision with input as answer([opaque_call(["rm", "-rf"], "stdin_operands")])
	d.action == "deny"
	d.reasons == ["tool call run_shell: destructive command: rm -rf (stdin_operands)"]
}

test_a_computed_program_with_rm_s_arguments_is_refused if {
	d := data.tollgate.decision with input as answer([opaque_call(["$(echo rm)", "-rf", "/"], "computed_program")])
	d.action == "deny"
}

test_a_recursive_function_is_refused if {
	data.tollgate.decision.action == "deny" with input as answer([opaque_call(["function", "b"], "recursive_function")])
}

test_an_opaque_entry_in_no_shape_is_ignored if {
	call := object.union(shell(["ls"]), {"opaque": [{"argv": "rm -rf /", "why": 1}, "x"]})
	data.tollgate.decision.action == "allow" with input as answer([call])
}

test_writes_to_a_disk_or_a_system_file_are_refused if {
	every path in ["/dev/sda", "/dev/nvme0n1", "//etc/passwd", "/boot/vmlinuz", "/proc/sysrq-trigger"] {
		data.tollgate.decision.action == "deny" with input as answer([object.union(shell(["cat"]), {"writes": [path]})])
	}
}

test_writes_elsewhere_pass if {
	every path in ["/dev/null", "/tmp/out", "out.txt", "/dev/stderr"] {
		data.tollgate.decision.action == "allow" with input as answer([object.union(shell(["cat"]), {"writes": [path]})])
	}
}

test_an_unreadable_answer_is_refused_to_agents if {
	input_ := json.patch(answer([]), [{"op": "replace", "path": "/llm/error", "value": "the answer is neither JSON nor an event stream"}])
	d := data.tollgate.decision with input as input_
	d.rules == ["llm.unreadable"]
	d.reasons == ["the model's answer was not read: the answer is neither JSON nor an event stream"]
}

test_a_tool_call_read_in_part_is_refused_to_agents if {
	call := object.union(shell(["ls"]), {"error": "the arguments hold more than 1024 strings"})
	d := data.tollgate.decision with input as answer([call])
	d.reasons == ["the model's answer was not read: tool call run_shell: the arguments hold more than 1024 strings"]
}

test_an_upstream_failure_is_passed_on if {
	input_ := json.patch(answer([]), [
		{"op": "replace", "path": "/llm/error", "value": "upstream error: Rate limit reached"},
		{"op": "replace", "path": "/response/status", "value": 429},
	])
	data.tollgate.decision.action == "allow" with input as input_
}

test_an_unreadable_answer_to_someone_not_an_agent_passes if {
	input_ := json.patch(answer([]), [
		{"op": "replace", "path": "/llm/error", "value": "the answer is neither JSON nor an event stream"},
		{"op": "replace", "path": "/identity/groups", "value": ["privileged"]},
	])
	data.tollgate.decision.action == "allow" with input as input_
}

test_an_unreadable_request_is_left_to_its_answer if {
	input_ := json.patch(answer([]), [
		{"op": "replace", "path": "/phase", "value": "request"},
		{"op": "replace", "path": "/llm/error", "value": "request body is a JSON null, not an object"},
	])
	data.tollgate.decision.action == "allow" with input as input_
}

# -- llm.credential ------------------------------------------------------------------------

test_a_tool_call_reading_a_credential_is_refused if {
	d := data.tollgate.decision with input as answer([shell(["cat", "/home/u/.aws/credentials"])])
	d.rules == ["llm.credential"]
	d.reasons == ["tool call run_shell: credential /home/u/.aws/credentials (AWS credentials)"]
}

test_a_path_argument_and_a_written_credential_are_refused if {
	path := object.union(shell(["read"]), {"name": "read_file", "commands": [], "texts": ["~/.kube/config"]})
	d := data.tollgate.decision with input as answer([path])
	d.reasons == ["tool call read_file: credential ~/.kube/config (a kubeconfig)"]
	write := object.union(shell(["echo", "ssh-ed25519 AAAA"]), {"writes": ["/root/.ssh/authorized_keys"]})
	w := data.tollgate.decision with input as answer([write])
	w.reasons == ["tool call run_shell: credential /root/.ssh/authorized_keys (SSH keys)"]
}

test_a_tool_call_archiving_a_home_is_refused if {
	d := data.tollgate.decision with input as answer([shell(["tar", "czf", "-", "/home/ada"])])
	d.reasons == ["tool call run_shell: tar reads /home/ada whole, a folder holding credentials"]
}

test_look_alikes_of_credentials_pass if {
	every argv in [["cat", "environment.md"], ["cat", ".env.example"], ["cat", "/home/u/.ssh/id_rsa.pub"], ["tar", "czf", "-", "src"]] {
		data.tollgate.decision.action == "allow" with input as answer([shell(argv)])
	}
}

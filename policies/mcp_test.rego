# Unit tests of mcp.rego, on input.mcp as the MCP interpreter fills it.
package tollgate_mcp_test

import rego.v1

exchange(groups, labels, mcp) := {"phase": "request",
	"identity": {"authenticated": true, "sub": "svc", "iss": "idp", "aud": ["tollgate"], "email": null, "groups": groups, "jti": null},
	"target": {"name": "tools", "protocol": "mcp", "environment": "dev", "labels": labels},
	"request": {"method": "POST", "path": "/mcp", "query": {}, "headers": {}, "body": null},
	"response": null, "sql": null, "k8s": null, "llm": null, "mcp": mcp, "approval": null}

message(fields) := object.union({
	"transport": "streamable-http", "from": "client", "session": "s-1", "kind": "request",
	"method": "initialize", "id": 1, "params": {}, "tool": null, "call": null,
	"resource": null, "prompt": null, "probe": false, "error": null,
}, fields)

declared(annotations) := {"title": null, "description": "Runs things", "input_schema": {"type": "object"}, "annotations": annotations}

pin(status) := {"status": status, "fingerprint": "aa", "pinned": "aa", "renamed_from": null} if {
	status == "pinned"
} else := {"status": status, "fingerprint": "bb", "pinned": "aa", "renamed_from": null} if {
	status == "changed"
} else := {"status": status, "fingerprint": "bb", "pinned": null, "renamed_from": null} if {
	status == "new"
} else := {"status": status, "fingerprint": "bb", "pinned": null, "renamed_from": "rotate_keys"} if {
	status == "renamed"
} else := {"status": status, "fingerprint": null, "pinned": null, "renamed_from": null}

# A tools/call of `name`, its definition `status` against the pin, its arguments read
# as `read` says (commands, sql, opaque, writes, error).
tools_call(name, status, read) := message({
	"method": "tools/call", "params": {"name": name, "arguments": {}},
	"tool": {"name": name, "arguments": {}, "kind": null, "declared": declared(null), "pin": pin(status)},
	"call": object.union({
		"id": null, "name": name, "arguments": {}, "arguments_text": "{}", "texts": [],
		"commands": [], "opaque": [], "writes": [], "sql": [], "error": null,
	}, read),
})

with_tool(m, fields) := object.union(m, {"tool": object.union(m.tool, fields)})

# What tollgate asks for each tool a tools/list shows.
probe(name, status) := object.union(tools_call(name, status, {}), {"probe": true, "id": null})

decide(groups, mcp) := d if {
	d := data.tollgate.decision with input as exchange(groups, {}, mcp)
}

# -- mcp.unreadable ----------------------------------------------------------------------

test_a_message_not_read_is_refused_to_everyone if {
	every groups in [["agents"], ["admins", "dba"], []] {
		d := decide(groups, message({"method": null, "error": "the body is no JSON-RPC 2.0 message"}))
		d.rules == ["mcp.unreadable"]
		d.reasons == ["the MCP message was not read: the body is no JSON-RPC 2.0 message"]
	}
}

test_arguments_read_in_part_are_refused if {
	d := decide(["agents"], tools_call("run_shell", "pinned", {"error": "the arguments hold more than 1024 strings"}))
	d.rules == ["mcp.unreadable"]
	d.reasons == ["the MCP message was not read: tool call run_shell: the arguments hold more than 1024 strings"]
}

test_messages_read_whole_pass if {
	every m in [
		message({}),
		message({"kind": "notification", "method": "notifications/initialized", "id": null}),
		message({"kind": "stream", "method": null, "id": null, "params": null}),
		message({"kind": "response", "method": null, "params": null}),
		message({"method": "tools/list"}),
		message({"method": "prompts/get", "prompt": {"name": "summarise", "arguments": {}}}),
		tools_call("run_shell", "pinned", {"commands": [["ls", "-la"]]}),
	] {
		decide(["agents"], m).action == "allow"
	}
}

# -- mcp.destructive_tool_call -----------------------------------------------------------

test_a_destructive_command_in_a_tool_call_is_refused if {
	d := decide(["admins"], tools_call("run_shell", "pinned", {"commands": [["rm", "-rf", "/"]]}))
	d.rules == ["mcp.destructive_tool_call"]
	d.reasons == ["tool call run_shell: destructive command: rm -rf /"]
}

test_destructive_sql_and_writes_in_a_tool_call_are_refused if {
	drop := {"kind": "drop", "object": "table", "text": "DROP TABLE t", "tables": ["t"], "has_where": null,
		"functions": [], "nested": false, "program": null, "alter_actions": [], "effects": ["destroy"], "bounded": null}
	d := decide(["agents"], tools_call("query", "pinned", {"sql": [drop]}))
	d.reasons == ["tool call query: destructive SQL: DROP"]
	w := decide(["agents"], tools_call("run_shell", "pinned", {"commands": [["cat"]], "writes": ["/etc/passwd"]}))
	w.reasons == ["tool call run_shell: output written to /etc/passwd"]
}

unparsed := {"kind": "unparsed", "text": "DELET FROM t", "error": "syntax error"}

test_sql_that_does_not_parse_is_refused_in_a_tool_read_as_sql if {
	m := with_tool(tools_call("execute", "pinned", {"sql": [unparsed]}), {"kind": "sql"})
	d := decide(["agents"], m)
	d.reasons == ["tool call execute: SQL that does not parse"]
}

test_text_that_does_not_parse_elsewhere_is_prose if {
	decide(["agents"], tools_call("add_note", "pinned", {"sql": [unparsed]})).action == "allow"
}

test_the_empty_call_of_a_probe_is_not_destructive if {
	decide(["agents"], probe("run_shell", "pinned")).action == "allow"
}

# -- mcp.opaque_tool_call ----------------------------------------------------------------

opaque(argv, why) := tools_call("run_shell", "pinned", {"commands": [argv], "opaque": [{"argv": argv, "why": why}]})

test_a_tool_call_running_what_cannot_be_read_is_held_for_agents if {
	d := decide(["agents"], opaque(["python3", "-c", "print(1)"], "inline_code"))
	d.action == "hold"
	d.rules == ["mcp.opaque_tool_call"]
	d.approvers == ["group:dba"]
	d.hold_seconds == 300
	d.reasons == ["tool call run_shell runs what cannot be read (inline_code): python3 -c print(1)"]
}

test_an_opaque_tool_call_of_someone_not_an_agent_passes if {
	decide(["admins"], opaque(["python3", "-c", "print(1)"], "inline_code")).action == "allow"
}

test_an_opaque_command_that_may_destroy_is_refused if {
	d := decide(["agents"], opaque(["rm", "-rf"], "stdin_operands"))
	d.action == "deny"
	d.reasons == ["tool call run_shell: destructive command: rm -rf (stdin_operands)"]
}

# -- mcp.privileged_tool -----------------------------------------------------------------

annotated(m, annotations) := with_tool(m, {"declared": declared(annotations)})

test_a_tool_declared_destructive_is_held_for_agents if {
	d := decide(["agents"], annotated(tools_call("drop_index", "pinned", {}), {"destructiveHint": true}))
	d.action == "hold"
	d.rules == ["mcp.privileged_tool"]
	d.approvers == ["group:dba"]
	d.hold_seconds == 300
	d.reasons == ["tool drop_index is declared destructive by its server (destructiveHint)"]
}

test_a_tool_declared_read_only_or_not_destructive_passes if {
	every annotations in [
		{"destructiveHint": true, "readOnlyHint": true}, {"destructiveHint": false},
		{"readOnlyHint": false}, {}, null, {"destructiveHint": "true"},
	] {
		decide(["agents"], annotated(tools_call("drop_index", "pinned", {}), annotations)).action == "allow"
	}
}

test_a_tool_declared_destructive_passes_for_someone_not_an_agent if {
	decide(["admins"], annotated(tools_call("drop_index", "pinned", {}), {"destructiveHint": true})).action == "allow"
}

test_a_tool_declared_destructive_is_still_listed if {
	decide(["agents"], annotated(probe("drop_index", "pinned"), {"destructiveHint": true})).action == "allow"
}

# -- mcp.tool_changed --------------------------------------------------------------------

changed_reason := "tool run_shell changed its definition since it was pinned (a rug pull?); it is refused until someone approves the new definition"

test_a_tool_whose_definition_changed_is_refused if {
	every groups in [["agents"], ["admins", "dba"]] {
		d := decide(groups, tools_call("run_shell", "changed", {"commands": [["ls"]]}))
		d.rules == ["mcp.tool_changed"]
		d.reasons == [changed_reason]
	}
}

test_a_tool_whose_definition_changed_is_hidden if {
	d := decide(["agents"], probe("run_shell", "changed"))
	d.action == "deny"
	d.rules == ["mcp.tool_changed"]
}

# -- mcp.tool_new, mcp.tool_renamed --------------------------------------------------------

test_a_tool_listed_late_is_refused_and_hidden_until_approved if {
	every groups in [["agents"], ["admins", "dba"]] {
		d := decide(groups, tools_call("read_files", "new", {}))
		d.rules == ["mcp.tool_new"]
		d.reasons == ["tool read_files was first listed after this server's tools were pinned; it is refused until someone approves it"]
		decide(groups, probe("read_files", "new")).rules == ["mcp.tool_new"]
	}
}

# rotate_keys is kept to admins (mcp_tool_groups): its definition under another name is
# refused to its members too, and hidden, until approved; the pack names the old tool.
test_a_definition_moved_to_another_name_is_refused_and_hidden if {
	every groups in [["agents"], ["admins"]] {
		d := decide(groups, tools_call("list_keys", "renamed", {}))
		d.rules == ["mcp.tool_renamed"]
		d.reasons == ["tool list_keys declares what tool rotate_keys declared (renamed, or moved under another name?); it is refused until someone approves it"]
		decide(groups, probe("list_keys", "renamed")).rules == ["mcp.tool_renamed"]
	}
}

test_a_tool_once_new_approved_is_called_as_any_pinned_one if {
	decide(["agents"], tools_call("list_keys", "pinned", {})).action == "allow"
}

# -- mcp.tool_unknown --------------------------------------------------------------------

test_a_tool_never_declared_is_refused if {
	d := decide(["agents"], tools_call("exfiltrate", "unknown", {}))
	d.rules == ["mcp.tool_unknown"]
	d.reasons == ["tool exfiltrate is unknown: the gateway never saw the server declare it (list the server's tools first)"]
}

test_the_gateways_own_listing_says_why_a_tool_stays_unknown if {
	failed := decide(["agents"], with_tool(tools_call("exfiltrate", "unknown", {}), {"self_listing": {"error": "the server answered HTTP 503"}}))
	failed.rules == ["mcp.tool_unknown"]
	failed.reasons == ["tool exfiltrate is unknown: the gateway never saw the server declare it (list the server's tools first); the gateway's own listing failed: the server answered HTTP 503"]
	absent := decide(["agents"], with_tool(tools_call("exfiltrate", "unknown", {}), {"self_listing": {"tools": 2}}))
	absent.rules == ["mcp.tool_unknown"]
	absent.reasons == ["tool exfiltrate is unknown: the gateway never saw the server declare it (list the server's tools first); the gateway's own listing of the server's tools (2) does not name it"]
}

test_a_tool_the_gateway_listed_itself_is_called_as_any_pinned_one if {
	decide(["agents"], with_tool(tools_call("read_file", "pinned", {}), {"self_listing": {"tools": 2}})).action == "allow"
}

test_a_tool_without_a_pin_is_unknown if {
	m := tools_call("exfiltrate", "pinned", {})
	every patch in [{"op": "remove", "path": "/tool/pin"}, {"op": "replace", "path": "/tool/pin", "value": {"status": "approved"}}] {
		decide(["agents"], json.patch(m, [patch])).rules == ["mcp.tool_unknown"]
	}
}

test_a_probe_is_not_refused_as_unknown if {
	decide(["agents"], probe("new_tool", "unknown")).action == "allow"
}

# -- mcp.tool_not_allowed ----------------------------------------------------------------

test_a_tool_kept_to_a_group_is_refused_to_others if {
	d := decide(["agents"], tools_call("rotate_keys", "pinned", {}))
	d.rules == ["mcp.tool_not_allowed"]
	d.reasons == ["tool rotate_keys of tools is for the groups admins only"]
}

test_a_tool_kept_to_a_group_is_hidden_from_others if {
	d := decide(["agents"], probe("rotate_keys", "pinned"))
	d.action == "deny"
	d.rules == ["mcp.tool_not_allowed"]
}

test_a_tool_kept_to_a_group_is_shown_to_and_called_by_its_members if {
	decide(["agents", "admins"], probe("rotate_keys", "pinned")).action == "allow"
	decide(["admins"], tools_call("rotate_keys", "pinned", {})).action == "allow"
}

test_the_same_tool_name_on_another_target_is_not_kept if {
	input_ := json.patch(exchange(["agents"], {}, tools_call("rotate_keys", "pinned", {})), [{"op": "replace", "path": "/target/name", "value": "other"}])
	data.tollgate.decision.action == "allow" with input as input_
}

test_the_tool_groups_are_data if {
	groups := {"crm": {"delete_customer": ["admins", "dba"]}}
	input_ := json.patch(exchange(["agents"], {}, tools_call("delete_customer", "pinned", {})), [{"op": "replace", "path": "/target/name", "value": "crm"}])
	d := data.tollgate.decision with input as input_ with data.tollgate.mcp_tool_groups as groups
	d.reasons == ["tool delete_customer of crm is for the groups admins, dba only"]
	data.tollgate.decision.action == "allow" with input as json.patch(input_, [{"op": "replace", "path": "/identity/groups", "value": ["dba"]}])
		with data.tollgate.mcp_tool_groups as groups
}

# -- mcp.server_request ------------------------------------------------------------------

server_request(method) := message({"from": "server", "method": method, "id": 7, "params": {}})

test_requests_from_the_server_are_refused if {
	every method in ["sampling/createMessage", "elicitation/create", "roots/list", "anything/else"] {
		d := decide(["agents"], server_request(method))
		d.rules == ["mcp.server_request"]
		d.reasons == [sprintf("server request %s: the target's label mcp-server-requests does not list it", [method])]
	}
}

test_the_label_lets_the_requests_it_lists_through if {
	labels := {"mcp-server-requests": " sampling/createMessage ,roots/list,"}
	every method in ["sampling/createMessage", "roots/list"] {
		data.tollgate.decision.action == "allow" with input as exchange(["agents"], labels, server_request(method))
	}
	d := data.tollgate.decision with input as exchange(["agents"], labels, server_request("elicitation/create"))
	d.rules == ["mcp.server_request"]
}

test_notifications_and_answers_from_the_server_pass if {
	decide(["agents"], message({"from": "server", "kind": "notification", "method": "notifications/progress", "id": null})).action == "allow"
	decide(["agents"], message({"from": "server", "kind": "response", "method": null})).action == "allow"
}

test_the_same_request_from_the_client_is_no_server_request if {
	decide(["agents"], message({"method": "sampling/createMessage"})).action == "allow"
}

# -- mcp.binary_content ------------------------------------------------------------------

answer_holding(items) := message({"from": "server", "kind": "response", "method": null, "content": items})

item(kind, mime) := {"type": kind, "kind": kind, "mime_type": mime, "size": 3, "sha256": concat("", ["ab" | some _ in numbers.range(1, 32)])}

test_audio_and_binary_content_are_refused_and_images_pass if {
	d := decide(["agents"], answer_holding([item("audio", "audio/wav"), item("binary", null)]))
	d.rules == ["mcp.binary_content"]
	d.reasons == [
		"binary content application/octet-stream: the target's label mcp-binary-content does not allow it",
		"binary content audio/wav: the target's label mcp-binary-content does not allow it",
	]
	decide(["agents"], answer_holding([item("image", "image/png")])).action == "allow"
}

test_the_label_lets_the_binary_types_it_names_through if {
	labels := {"mcp-binary-content": "AUDIO/*, application/pdf"}
	wav := answer_holding([item("audio", "audio/wav"), item("binary", "application/pdf")])
	data.tollgate.decision.action == "allow" with input as exchange(["agents"], labels, wav)
	zip := answer_holding([item("binary", "application/zip")])
	d := data.tollgate.decision with input as exchange(["agents"], labels, zip)
	d.rules == ["mcp.binary_content"]
	data.tollgate.decision.action == "allow" with input as exchange(["agents"], {"mcp-binary-content": "*"}, zip)
}

# -- mcp.resource_path -------------------------------------------------------------------

read(uri) := message({"method": "resources/read", "params": {"uri": uri}, "resource": {"uri": uri}})

test_an_agent_reading_a_system_file_is_refused if {
	every uri in [
		"file:///etc/passwd", "file:///etc", "file:///", "file://localhost/etc/shadow",
		"FILE:/root/.profile", "file:///tmp/../etc/passwd", "file:///%65tc/passwd",
		"file:///proc/self/environ", "file://///etc//passwd", "file:///home", "file:///etc/%zz",
		"file:///etc#top", "file:///etc/passwd?raw=1", "file:///tmp/%2e%2e/etc/passwd",
	] {
		d := decide(["agents"], read(uri))
		d.rules == ["mcp.resource_path"]
		d.reasons == [sprintf("resources/read of %s: a system path", [uri])]
	}
}

test_other_resources_pass if {
	every uri in ["file:///srv/docs/readme.md", "file:///home/ada/notes.txt", "file:///tmp/etc/x", "https://example.com/etc/passwd", "db://customers/etc"] {
		decide(["agents"], read(uri)).action == "allow"
	}
	decide(["admins"], read("file:///etc/hosts")).action == "allow"
}

# -- the rest of the pack ------------------------------------------------------------------

test_the_pack_does_not_decide_mcp_responses if {
	not data.tollgate.decides_responses with input as {"target": {"name": "tools", "protocol": "mcp", "environment": "dev", "labels": {}}}
}

test_mcp_answers_are_masked_as_everything_is if {
	d := decide(["agents"], message({}))
	d.mask.detectors == ["all"]
}

test_an_mcp_key_in_no_shape_is_no_error if {
	every mcp in [null, "tools/call", [1], {"tool": "x", "call": [], "probe": "yes", "from": 1}, {"method": "tools/call", "tool": {"name": 1}}] {
		d := decide(["agents"], mcp)
		d.action in {"allow", "deny"}
	}
}

# -- mcp.credential --------------------------------------------------------------------------

test_reading_a_credential_resource_is_refused_to_everyone if {
	every groups in [["agents"], ["admins"]] {
		every uri in ["file:///home/ada/.aws/credentials", "file:///home/ada/%2Eaws/credentials", "file://localhost/srv/app/.ENV", "file:///C:%5CUsers%5Cada%5C.ssh%5Cid_rsa"] {
			d := decide(groups, read(uri))
			d.rules == ["mcp.credential"]
			regex.match(`^resources/read of .*: a credential \((AWS credentials|an environment file|SSH keys)\)$`, d.reasons[0])
		}
	}
}

test_a_tool_call_naming_a_credential_is_refused if {
	d := decide(["agents"], tools_call("read_file", "pinned", {"texts": ["/var/run/secrets/kubernetes.io/serviceaccount/token"]}))
	d.rules == ["mcp.credential"]
	d.reasons == ["tool call read_file: credential /var/run/secrets/kubernetes.io/serviceaccount/token (a Kubernetes service-account token, a container secret)"]
}

test_other_files_pass_mcp if {
	every uri in ["file:///home/ada/notes/environment.md", "file:///srv/app/.env.example", "file:///home/ada/.ssh/id_ed25519.pub"] {
		decide(["agents"], read(uri)).action == "allow"
	}
}

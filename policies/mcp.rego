# MCP (targets of protocol mcp): a Model Context Protocol message, as the MCP
# interpreter (extproc/interpret/mcp.py) reads it into input.mcp. A tools/call is judged
# as a model's tool call is (llm.rego's destructive_in, shell.rego, sql.rego), with what
# the server declared about the tool (its annotations) and where that declaration
# stands against the one pinned for it. What a tools/list shows is decided here too:
# tollgate probes each listed tool with a call of no arguments (input.mcp.probe true)
# and hides the tools whose probe is denied. A hold never hides a tool: the rules that
# hold leave probes alone, and the rules that deny a probe are those that would deny
# any call to the tool.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (mcp_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
mcp_exchange if input.mcp != null

denials contains x if {
	mcp_exchange
	some x in mcp_denials
}

holds contains x if {
	mcp_exchange
	some x in mcp_holds
}

# Which tools of which MCP target only some groups may call (and see listed), as data:
# target name -> tool name -> the groups (input.identity.groups) whose members may. A
# caller in none of them is refused the tool, and a tools/list does not show it. Edit
# the object to keep your own tools, one entry per target, e.g.
#
#	"crm": {"delete_customer": ["admins"], "export": ["admins", "dba"]},
#
# (one complete rule, as the pack's other tables: the compiled program tollgate runs
# takes no object built key by key across files). The quickstart's MCP target `tools`
# keeps `rotate_keys` to admins.
mcp_tool_groups := {"tools": {"rotate_keys": ["admins"]}}

# A message the interpreter could not read (no JSON, a batch, no JSON-RPC 2.0, a
# tools/call without a tool name, arguments past the reading's limits) cannot be judged.
mcp_denials contains {"rule": "mcp.unreadable", "reason": sprintf("the MCP message was not read: %s", [what])} if {
	some what in mcp_unread
}

mcp_unread contains input.mcp.error if is_string(input.mcp.error)

mcp_unread contains sprintf("tool call %s: %s", [tool_name(input.mcp.call), input.mcp.call.error]) if {
	is_object(input.mcp.call)
	is_string(input.mcp.call.error)
}

# A tools/call whose arguments carry a destructive command, SQL or write: the same
# judgement as a model's tool call (llm.destructive_tool_call), for everyone.
mcp_denials contains {
	"rule": "mcp.destructive_tool_call",
	"reason": sprintf("tool call %s: %s", [tool_name(input.mcp.call), what]),
} if {
	some what in mcp_destructive
}

mcp_destructive contains what if {
	is_object(input.mcp.call)
	some what in destructive_in(input.mcp.call)
}

# A tools/call whose arguments name a credential file, as a model's tool call
# (llm.credential); a resources/read of one, whatever the caller.
mcp_denials contains {"rule": "mcp.credential", "reason": what} if {
	some what in mcp_credentials
}

mcp_credentials contains sprintf("tool call %s: %s", [tool_name(input.mcp.call), what]) if {
	is_object(input.mcp.call)
	some what in credentials_in_call(input.mcp.call)
}

mcp_credentials contains sprintf("resources/read of %s: a credential (%s)", [input.mcp.resource.uri, hit.kind]) if {
	input.mcp.method == "resources/read"
	is_string(input.mcp.resource.uri)
	regex.match(`(?i)^file:`, input.mcp.resource.uri)
	some hit in credentials_in_path(file_uri_path(input.mcp.resource.uri))
}

# A tool read as SQL (the target's sql_tools, or an input schema with a `sql` or `query`
# string) runs its arguments: text there that does not parse is refused, whatever the
# tool's name.
mcp_destructive contains "SQL that does not parse" if {
	input.mcp.tool.kind == "sql"
	some s in array_or_empty(input.mcp.call.sql)
	s.kind == "unparsed"
}

# A call that runs what cannot be read waits for a human, as a model's does
# (llm.opaque_tool_call).
mcp_holds contains {
	"rule": "mcp.opaque_tool_call",
	"reason": sprintf("tool call %s runs what cannot be read (%s): %s", [tool_name(input.mcp.call), o.why, concat(" ", o.argv)]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	agent
	not mcp_probe
	is_object(input.mcp.call)
	some o in opaques(input.mcp.call.opaque)
	tool_call_opaque_held(o)
}

# A tool its server declares destructive (annotations.destructiveHint true, and not
# readOnlyHint true) waits for a human when an agent calls it. The annotations are the
# server's word, pinned with the rest of the definition (mcp.tool_changed).
mcp_holds contains {
	"rule": "mcp.privileged_tool",
	"reason": sprintf("tool %s is declared destructive by its server (destructiveHint)", [mcp_tool_name]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	agent
	mcp_tool_call
	not mcp_probe
	input.mcp.tool.declared.annotations.destructiveHint == true
	not input.mcp.tool.declared.annotations.readOnlyHint == true
}

# A tool whose definition (title, description, input schema, annotations) is not the one
# pinned when it was first seen or last approved: its description may now instruct the
# model otherwise (a rug pull). Refused, and hidden from tools/list, until someone
# approves the new definition (tollgate asks the target's mcp.pin_approvers).
mcp_denials contains {
	"rule": "mcp.tool_changed",
	"reason": sprintf("tool %s changed its definition since it was pinned (a rug pull?); it is refused until someone approves the new definition", [mcp_tool_name]),
} if {
	mcp_tool_call
	input.mcp.tool.pin.status == "changed"
}

# A tool first listed after the target's first listing (whose tools were trusted on
# sight): a server that renames a trusted tool while redefining it, or adds one later,
# is not trusted on its word. Refused, and hidden, until someone approves it.
mcp_denials contains {
	"rule": "mcp.tool_new",
	"reason": sprintf("tool %s was first listed after this server's tools were pinned; it is refused until someone approves it", [mcp_tool_name]),
} if {
	mcp_tool_call
	input.mcp.tool.pin.status == "new"
}

# A tool first listed later that declares what another tool of the target declared (all
# but the name): a rename, or a definition moved under a name this pack (or its
# mcp_tool_groups) treats more leniently. Refused, and hidden, until someone approves it.
mcp_denials contains {
	"rule": "mcp.tool_renamed",
	"reason": sprintf("tool %s declares what tool %s declared (renamed, or moved under another name?); it is refused until someone approves it", [mcp_tool_name, mcp_renamed_from]),
} if {
	mcp_tool_call
	input.mcp.tool.pin.status == "renamed"
}

# A call to a tool tollgate never saw this target's server declare (in a tools/list):
# nothing was pinned for it, so nothing says what it is. tollgate lists the server's
# tools itself before (input.mcp.tool.self_listing): the reason says what that found.
mcp_denials contains {
	"rule": "mcp.tool_unknown",
	"reason": sprintf("tool %s is unknown: the gateway never saw the server declare it (list the server's tools first)%s", [mcp_tool_name, mcp_self_listing]),
} if {
	mcp_tool_call
	not mcp_probe
	not mcp_pin_status in {"pinned", "changed", "new", "renamed"}
}

mcp_self_listing := sprintf("; the gateway's own listing failed: %s", [input.mcp.tool.self_listing.error]) if {
	is_string(input.mcp.tool.self_listing.error)
} else := sprintf("; the gateway's own listing of the server's tools (%d) does not name it", [input.mcp.tool.self_listing.tools]) if {
	is_number(input.mcp.tool.self_listing.tools)
} else := ""

# A tool kept to some groups (mcp_tool_groups, above): refused to, and hidden from, a
# caller in none of them.
mcp_denials contains {
	"rule": "mcp.tool_not_allowed",
	"reason": sprintf("tool %s of %s is for the groups %s only", [mcp_tool_name, input.target.name, concat(", ", allowed)]),
} if {
	mcp_tool_call
	# Iterated, not looked up (mcp_tool_groups[target][tool]): on the compiled program
	# tollgate runs (regorus 0.13's RVM), a lookup that finds nothing does not stop the
	# body, and the `not` below would then refuse every tool of every target.
	some target, tools in mcp_tool_groups
	target == input.target.name
	some tool, allowed in tools
	tool == mcp_tool_name
	not mcp_in_any(allowed)
}

mcp_in_any(allowed) if {
	some g in allowed
	g in groups
}

# A request the server sends the client (sampling/createMessage: the client's model
# answers the server; elicitation/create: the user is asked; roots/list: the client's
# directories are listed) is refused unless the target's label `mcp-server-requests`
# names its method (comma-separated: "sampling/createMessage, roots/list").
mcp_denials contains {
	"rule": "mcp.server_request",
	"reason": sprintf("server request %s: the target's label mcp-server-requests does not list it", [mcp_method]),
} if {
	input.mcp.from == "server"
	input.mcp.kind == "request"
	not mcp_method in mcp_server_requests
}

mcp_server_requests := {trim_space(m) |
	some m in split(input.target.labels["mcp-server-requests"], ",")
	trim_space(m) != ""
} if {
	is_string(input.target.labels["mcp-server-requests"])
} else := set()

# Binary content in a server's message (input.mcp.content, at the response phase: each
# base64 item that is not text, with its kind, mime type, size and sha256). Images pass
# here: tollgate reads their text by OCR and masks it in the image (or refuses an image
# it cannot read). Audio and other binary content cannot be read, so they are refused
# unless the target's label `mcp-binary-content` names the mime type
# ("audio/wav, application/pdf"), its type ("audio/*") or "*" (comma-separated).
mcp_denials contains {
	"rule": "mcp.binary_content",
	"reason": sprintf("binary content %s: the target's label mcp-binary-content does not allow it", [mime]),
} if {
	some mime in mcp_binary_types
	not mime in mcp_binary_allowed
}

# The mime types of the content no OCR reads (none given: application/octet-stream).
mcp_binary_types contains lower(item.mime_type) if {
	some item in input.mcp.content
	item.kind != "image"
	is_string(item.mime_type)
}

mcp_binary_types contains "application/octet-stream" if {
	some item in input.mcp.content
	item.kind != "image"
	not is_string(item.mime_type)
}

mcp_binary_allowed contains mime if {
	some mime in mcp_binary_types
	some allowed in mcp_binary_labels
	allowed in {"*", mime, concat("", [split(mime, "/")[0], "/*"])}
}

mcp_binary_labels := {lower(trim_space(m)) |
	some m in split(input.target.labels["mcp-binary-content"], ",")
	trim_space(m) != ""
} if {
	is_string(input.target.labels["mcp-binary-content"])
} else := set()

# An agent reading a file:// resource at the root, a home, a system directory or below
# /etc, /root, /boot, /dev, /proc or /sys (shell.rego's system_path; `..` climbing
# there too).
mcp_denials contains {
	"rule": "mcp.resource_path",
	"reason": sprintf("resources/read of %s: a system path", [input.mcp.resource.uri]),
} if {
	agent
	input.mcp.method == "resources/read"
	is_string(input.mcp.resource.uri)
	regex.match(`(?i)^file:`, input.mcp.resource.uri)
	resource_system_path(file_uri_path(input.mcp.resource.uri))
}

# The path of a file URI (`file:///etc/passwd`, `file://host/etc`, `file:/etc`), without
# its query or fragment, its percent-escapes decoded (when one is malformed, the path as
# it is).
file_uri_path(uri) := uri_unescaped(regex.replace(uri, `(?i)^file:(//[^/]*)?|[?#].*$`, ""))

uri_unescaped(path) := urlquery.decode(replace(path, "+", "%2B")) if {
	contains(path, "%")
	regex.match(`^([^%]|%[0-9A-Fa-f]{2})*$`, path)
} else := path

resource_system_path(path) if system_path(path)

resource_system_path(path) if regex.match(`^/(etc|root|boot|dev|proc|sys)(/|$)`, normal_path(path))

mcp_tool_call if {
	input.mcp.method == "tools/call"
	is_object(input.mcp.tool)
}

mcp_probe if input.mcp.probe == true

mcp_tool_name := input.mcp.tool.name if {
	is_string(input.mcp.tool.name)
} else := "(unnamed)"

mcp_method := input.mcp.method if {
	is_string(input.mcp.method)
} else := "(no method)"

mcp_renamed_from := input.mcp.tool.pin.renamed_from if {
	is_string(input.mcp.tool.pin.renamed_from)
} else := "(unnamed)"

mcp_pin_status := input.mcp.tool.pin.status if {
	is_string(input.mcp.tool.pin.status)
} else := "unknown"

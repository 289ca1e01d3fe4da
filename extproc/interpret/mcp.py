"""The MCP interpreter: a Model Context Protocol message as policy input (`input.mcp`).

MCP is JSON-RPC 2.0 over HTTP: the streamable HTTP transport POSTs one message and is
answered with JSON or an event stream (`Mcp-Session-Id` names the session); the older
HTTP+SSE transport POSTs to an endpoint carrying `?session_id=` and answers on a GET
event stream. Either way a request means one message, read here:

    read_request(...)   -> {"transport", "from", "session", "kind", "method", "id",
                            "params", "tool", "call", "resource", "prompt", "probe",
                            "error"}

A `tools/call` is read as a model's tool call is (`llm.tool_call`: commands, SQL, writes
in its arguments), so one rule judges `run_shell` from a model, `kubectl exec` and an
MCP shell tool; what the server declared about the tool (its pinned definition) is
added by `Mcp.complete` once the pins have been asked. What cannot be read — no JSON, a
batch (MCP dropped batching in 2025-06-18), no JSON-RPC 2.0 — is an `error` the pack
refuses.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any, Literal, NotRequired, Protocol, TypedDict

import orjson

from extproc.interpret.llm import ToolCall, loads, tool_call

if TYPE_CHECKING:
    from extproc.token_exchange import Subject

Transport = Literal["streamable-http", "sse"]


class Pin(TypedDict):
    """Where a tool's definition stands against the one pinned for it (approvals/pins.py)."""

    status: Literal["pinned", "changed", "new", "renamed", "unknown"]
    fingerprint: str | None  # of what the server declares now
    pinned: str | None  # of the definition approved (first seen, or approved since)
    # Another name this target declared the same definition under (a rename, a move, a
    # swap, a copy): what a pack keyed by tool names would otherwise not see.
    renamed_from: str | None


class Declared(TypedDict):
    """What a server declares about a tool (`tools/list`), as fingerprinted: all of it."""

    title: str | None
    description: str
    input_schema: Any
    annotations: Any
    # The rest of its definition as declared (outputSchema, _meta, icons, a non-string
    # title...), when there is any: absent, a definition fingerprints as before it was read.
    more: NotRequired[dict[str, Any]]


class SelfListing(TypedDict, total=False):
    """The listing tollgate made itself for a call to a tool it had no pin for: how many
    tools the server listed, or why there is no listing."""

    tools: int
    error: str


class ToolInput(TypedDict):
    name: str
    arguments: Any
    kind: str | None  # shell | sql: how its arguments are read
    declared: Declared | None
    pin: Pin
    self_listing: NotRequired[SelfListing]


class ToolPins(Protocol):
    """The tool definitions pinned per target (extproc/approvals/pins.py): the first seen
    is trusted, a later change waits for a human's approval."""

    async def declared(self, target: str, name: str) -> tuple[Declared | None, Pin]:
        """What the target last declared about a tool, and where that stands."""
        ...

    async def listed(self, target: str, approvers: tuple[str, ...],
                     tools: list[tuple[str, Declared]], asker: Any,
                     continued: bool = False) -> dict[str, Pin]:
        """Each listed tool's pin; a change, or a tool new since the target's first
        listing, asks `approvers` to approve it (`asker`: the evidence of the exchange
        that saw it; `continued`: the listing is a page asked for with a cursor)."""
        ...


class ListingFailed(Exception):
    """tollgate's own tools/list of a target's server gave no list; the message says why."""


class ToolLister(Protocol):
    """Lists a target's tools from its server, as the call would reach it, and pins them
    as a client's first listing would be (extproc/approvals/self_listing.py): what lets a
    stateless client call a tool it listed elsewhere, or never."""

    async def listed(self, target: str, call: McpReading, headers: dict[str, str],
                     asker: Any, subject: Subject | None = None) -> int:
        """How many tools the server listed (all given to the pins); ListingFailed with
        why there is no list. `call`, `headers`: the tools/call and its request's headers
        (the protocol revision, session and envelope the listing repeats); `subject`:
        the agent's verified token, for a target that trades it for its own."""
        ...


# Why a call to a tool with no pin went without tollgate's own listing of the tools.
NO_LISTER = ("the gateway lists a server's tools itself only when its config names the "
             "Envoy bootstrap it serves (identity.envoy_bootstrap)")

# `from` is a keyword: the reading is built as a plain dict of this shape.
McpReading = dict[str, Any]

UNKNOWN: Pin = {"status": "unknown", "fingerprint": None, "pinned": None, "renamed_from": None}
# Property names that make a tool's string arguments shell command lines, or SQL.
_SHELL_PROPERTIES = frozenset({"command", "cmd", "script", "shell", "commandline"})
_SQL_PROPERTIES = frozenset({"sql", "query", "statement", "sql_query"})
# JSON-RPC's server-error range: tollgate's refusal.
REFUSED_CODE = -32001


def read_request(method: str, query: dict[str, list[str]], headers: dict[str, str],
                 body: Any) -> McpReading:
    """What one HTTP request to an MCP server means."""
    legacy = bool(query.get("session_id"))
    transport: Transport = "sse" if legacy else "streamable-http"
    session = headers.get("mcp-session-id") or (query["session_id"][0] if legacy else None)
    if method != "POST":  # GET opens an event stream, DELETE ends a session
        return reading(transport, "client", session, kind="stream")
    if isinstance(body, str | bytes):
        try:
            body = loads(body)
        except ValueError:
            return reading(transport, "client", session, kind="request",
                           error="the body is no JSON: an MCP message is a JSON-RPC object")
    found = message_reading(body, transport, "client", session)
    if found["error"] is None and (mismatch := header_mismatch(headers, found)) is not None:
        found["error"] = HEADERS_DISAGREE + mismatch
    return found


# Protocol revisions whose requests must name their method (and, for a named one, its
# name) in headers that agree with the body (SEP-2243): what an intermediary routes by.
_HEADERS_REQUIRED_FROM = "2026-07-28"
# A method's name, as its `Mcp-Name` header repeats it: the params key it is under.
_NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# How a reading's error begins when the headers disagree with the body, which is answered
# as SEP-2243 asks (400, JSON-RPC's HeaderMismatch code) rather than as other refusals.
HEADERS_DISAGREE = "the request's headers disagree with its body: "
HEADER_MISMATCH_CODE = -32020


def header_mismatch(headers: dict[str, str], found: McpReading) -> str | None:
    """Why the request's `Mcp-Method` / `Mcp-Name` headers disagree with its body (None:
    they agree, or are absent where the protocol revision does not ask for them). A
    header is compared as sent, past the whitespace around it (values are case-sensitive);
    a disagreement would let what routes by the headers see another request than the
    server runs."""
    if found["kind"] not in ("request", "notification"):
        return None
    required = headers.get("mcp-protocol-version", "").strip() >= _HEADERS_REQUIRED_FROM
    method, named = headers.get("mcp-method"), _NAMED.get(found["method"])
    if method is None:
        return "the Mcp-Method header is missing" if required else None
    if method.strip() != found["method"]:
        return (f"the Mcp-Method header ({method.strip()[:64]!r}) disagrees with the "
                f"body's method ({found['method'][:64]!r})")
    name = headers.get("mcp-name")
    value = (found["params"] or {}).get(named) if named is not None else None
    if name is None:
        return (f"the Mcp-Name header is missing for {found['method']}"
                if required and named is not None else None)
    if not isinstance(value, str) or _header_value(name.strip()) != value:
        return (f"the Mcp-Name header ({name.strip()[:64]!r}) disagrees with the body's "
                f"{named or 'name'} ({str(value)[:64]!r})")
    return None


_BASE64_HEADER = re.compile(r"=\?base64\?(.*)\?=")


def _header_value(value: str) -> str | None:
    """A header's value as its sender meant it: as written, or, written `=?base64?…?=`
    (a value a header cannot carry as it is), the UTF-8 it encodes in canonical base64;
    None for one that does not decode, which matches nothing."""
    m = _BASE64_HEADER.fullmatch(value)
    if m is None:
        return value
    try:
        decoded = base64.b64decode(m[1], validate=True)
        if base64.b64encode(decoded).decode() != m[1]:
            return None
        return decoded.decode("utf-8")
    except ValueError:
        return None


def message_reading(message: Any, transport: Transport, sender: str,
                    session: str | None) -> McpReading:
    """One JSON-RPC message, from the client or (`sender` server) the server."""
    if isinstance(message, list):
        return reading(transport, sender, session, kind="request",
                       error="a JSON-RPC batch is not read (MCP sends one message per "
                             "request since 2025-06-18): send its messages one by one")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return reading(transport, sender, session, kind="request",
                       error="the body is no JSON-RPC 2.0 message")
    has_id = "id" in message
    rpc_method = message.get("method")
    if rpc_method is None:
        if has_id and ("result" in message or "error" in message):
            return reading(transport, sender, session, kind="response", rpc_id=message["id"])
        return reading(transport, sender, session, kind="request",
                       error="a JSON-RPC message with neither a method nor a result")
    if not isinstance(rpc_method, str):
        return reading(transport, sender, session, kind="request",
                       error="the message's method is not a string")
    params = message.get("params")
    if params is not None and not isinstance(params, dict):
        return reading(transport, sender, session, kind="request", method=rpc_method,
                       error="the message's params are not an object")
    found = reading(transport, sender, session,
                    kind="request" if has_id else "notification", method=rpc_method,
                    rpc_id=message.get("id"), params=params)
    params = params or {}
    if rpc_method == "tools/call":
        name, arguments = params.get("name"), params.get("arguments", {})
        if not isinstance(name, str) or not isinstance(arguments, dict | None):
            found["error"] = "tools/call needs a tool name and arguments as an object"
            return found
        found["tool"] = {"name": name, "arguments": arguments or {}, "kind": None,
                         "declared": None, "pin": UNKNOWN}
    elif rpc_method == "resources/read":
        uri = params.get("uri")
        if not isinstance(uri, str):
            found["error"] = "resources/read needs a uri"
        found["resource"] = {"uri": uri if isinstance(uri, str) else None}
    elif rpc_method == "prompts/get":
        found["prompt"] = {"name": params.get("name"), "arguments": params.get("arguments")}
    return found


def reading(transport: Transport, sender: str, session: str | None, *, kind: str,
            method: str | None = None, rpc_id: Any = None, params: Any = None,
            error: str | None = None) -> McpReading:
    return {"transport": transport, "from": sender, "session": session, "kind": kind,
            "method": method, "id": rpc_id, "params": params, "tool": None, "call": None,
            "resource": None, "prompt": None, "probe": False, "error": error}


def with_tool(meaning: McpReading, declared: Declared | None, pin: Pin,
              shell_tools: tuple[str, ...], sql_tools: tuple[str, ...]) -> McpReading:
    """A tools/call reading with what the server declared about the tool, its arguments
    read as its kind says (`call`: the shape of a model's tool call)."""
    tool: ToolInput = meaning["tool"]
    kind = tool_kind(tool["name"], declared, shell_tools, sql_tools)
    call: ToolCall = tool_call(meaning["id"], tool["name"], tool["arguments"], kind)
    return {**meaning, "tool": {**tool, "kind": kind, "declared": declared, "pin": pin},
            "call": call}


def probe(meaning: McpReading, declared: Declared, name: str, pin: Pin,
          shell_tools: tuple[str, ...], sql_tools: tuple[str, ...]) -> McpReading:
    """The reading of a call to a tool a tools/list shows, with no arguments: its
    decision says whether the tool is shown to this identity."""
    call = reading(meaning["transport"], "client", meaning["session"], kind="request",
                   method="tools/call", rpc_id=None, params={"name": name, "arguments": {}})
    call["tool"] = {"name": name, "arguments": {}, "kind": None, "declared": None,
                    "pin": UNKNOWN}
    call["probe"] = True
    return with_tool(call, declared, pin, shell_tools, sql_tools)


def tool_kind(name: str, declared: Declared | None, shell_tools: tuple[str, ...],
              sql_tools: tuple[str, ...]) -> str | None:
    """How a tool's arguments are read: as the target's config says, else as its input
    schema's string properties suggest (`command` -> shell, `sql` -> SQL)."""
    if name in shell_tools:
        return "shell"
    if name in sql_tools:
        return "sql"
    schema = declared["input_schema"] if declared else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return None
    strings = {str(k).lower() for k, v in properties.items()
               if isinstance(v, dict) and v.get("type") == "string"}
    if strings & _SHELL_PROPERTIES:
        return "shell"
    return "sql" if strings & _SQL_PROPERTIES else None


def declared_of(tool: Any) -> tuple[str, Declared] | None:
    """A listed tool's name and what it declares (None: no tool object with a name)."""
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        return None
    title = tool.get("title")
    description = tool.get("description")
    declared: Declared = {
        "title": title if isinstance(title, str) else None,
        "description": description if isinstance(description, str) else "",
        "input_schema": tool.get("inputSchema"),
        "annotations": tool.get("annotations"),
    }
    more = {k: v for k, v in tool.items() if k not in _READ
            and not (k in ("title", "description") and isinstance(v, str))}
    if more:
        declared["more"] = more
    return tool["name"], declared


_READ = frozenset({"name", "inputSchema", "annotations"})  # read into Declared as they are


def fingerprint(name: str, declared: Declared) -> str:
    """SHA-256 over a tool's name and declaration in canonical JSON: any change to its
    definition (description, schemas, annotations, `_meta`...) is a new definition."""
    text = orjson.dumps({"name": name, **declared}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


def definition_fingerprint(declared: Declared) -> str:
    """SHA-256 over a tool's declaration without its name: the same definition under
    another name (a renamed, moved or copied tool) fingerprints alike."""
    return hashlib.sha256(orjson.dumps(declared, option=orjson.OPT_SORT_KEYS)).hexdigest()


def listed_tools(message: Any) -> list[Any] | None:
    """The tools a server's message lists (a tools/list result), else None."""
    if not isinstance(message, dict) or "id" not in message:
        return None
    result = message.get("result")
    tools = result.get("tools") if isinstance(result, dict) else None
    return tools if isinstance(tools, list) else None


def server_request(message: Any) -> bool:
    """Whether a server's message is a request of its own to the client (sampling,
    elicitation, roots): it has a method and an id."""
    return isinstance(message, dict) and "method" in message and "id" in message


def input_required(message: Any) -> bool:
    """Whether a server's answer asks the client for input (2026-07-28) in place of
    requests of its own: an input-required result, or any result carrying
    `inputRequests` (a task's `tasks/get` status, a shape to come: a client that reads
    them would answer them all the same)."""
    result = message.get("result") if isinstance(message, dict) else None
    return isinstance(result, dict) and (result.get("resultType") == "input_required"
                                         or "inputRequests" in result)


def rpc_error(rpc_id: Any, body: dict[str, Any], code: int = REFUSED_CODE) -> dict[str, Any]:
    """tollgate's refusal as a JSON-RPC error, which MCP clients raise with its message;
    tollgate's own keys (reasons, rules, trace id, approval) are its `data`."""
    why = "; ".join(body.get("reasons") or [body.get("message") or body["error"]])
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {
        "code": code,
        "message": f"tollgate refused: {why} (trace {body['trace_id']})",
        "data": body,
    }}


# A refused request of the HTTP+SSE transport, sent upstream as a ping: its id carries the
# refusal (base64url JSON), which the server's answer echoes on the client's stream.
_REFUSED_ID = "tollgate-refused:"


def refused_ping(refusal: dict[str, Any]) -> bytes:
    """A `ping` in a refused request's place, its id the refusal (a JSON-RPC error)."""
    carried = base64.urlsafe_b64encode(orjson.dumps(refusal)).decode()
    return orjson.dumps({"jsonrpc": "2.0", "id": _REFUSED_ID + carried, "method": "ping"})


def refusal_carried(message: Any) -> dict[str, Any] | None:
    """The refusal a server's answer to a refused request's ping carries (None: the
    message is no such answer). Only the error's shape is taken from it: a server that
    forged one could only have answered its client's request with an error anyway."""
    if not isinstance(message, dict) or "method" in message:
        return None
    rpc_id = message.get("id")
    if not isinstance(rpc_id, str) or not rpc_id.startswith(_REFUSED_ID):
        return None
    try:
        refusal = orjson.loads(base64.urlsafe_b64decode(rpc_id[len(_REFUSED_ID):]))
    except ValueError:
        return None
    error = refusal.get("error") if isinstance(refusal, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    return {"jsonrpc": "2.0", "id": refusal.get("id"),
            "error": {"code": REFUSED_CODE, "message": error["message"],
                      "data": error.get("data")}}

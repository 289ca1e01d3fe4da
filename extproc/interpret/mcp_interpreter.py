"""`input.mcp`: a Model Context Protocol message read by mcp.py, a tool call completed
with what the server declared of its tool and its pin; refused as a JSON-RPC error the
client raises; summed up for the span as OpenTelemetry's MCP conventions have it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from extproc.config import Mcp as McpSettings
from extproc.interpret.base import Plain

if TYPE_CHECKING:
    from extproc.codecs.message import Request
    from extproc.interpret.mcp import McpReading, SelfListing, ToolLister, ToolPins
    from extproc.token_exchange import Subject


class Mcp(Plain):
    """A Model Context Protocol message (JSON-RPC over streamable HTTP or HTTP+SSE): a
    tool call read as a model's is, with what the server declared about the tool and
    where its definition stands against the pinned one (`pins`)."""

    key = "mcp"

    def __init__(self, settings: McpSettings, target: str, pins: ToolPins | None,
                 lister: ToolLister | None = None) -> None:
        """`lister`: what lists the target's tools from its server when a call names one
        without a pin (None: nothing does, and such a call stays unknown)."""
        from extproc.interpret import mcp

        self._mcp = mcp
        self._settings, self._target, self._pins = settings, target, pins
        self._lister = lister

    def request(self, request: Request) -> McpReading:
        return self._mcp.read_request(request["method"], request["query"],
                                      request["headers"], request["body"])

    async def complete(self, meaning: McpReading, headers: dict[str, str] | None = None,
                       asker: Any = None, subject: Subject | None = None) -> McpReading:
        """A tools/call with what the server declared about its tool (none known without
        pins: `unknown`), its arguments read as the tool's kind says. A tool with no pin
        (a stateless client may call one it listed elsewhere, or never) has the server's
        tools listed by tollgate first, pinned as a client's listing is, when `headers`
        (the request's) and `asker` (its evidence) say on whose behalf (`subject`: the
        agent's verified token, for a target that trades it for its own)."""
        if meaning["tool"] is None:
            return meaning
        if self._pins is None:
            return self._mcp.with_tool(meaning, None, self._mcp.UNKNOWN,
                                       self._settings.shell_tools, self._settings.sql_tools)
        name = meaning["tool"]["name"]
        declared, pin = await self._pins.declared(self._target, name)
        listing: SelfListing | None = None
        if pin["status"] == "unknown" and headers is not None and meaning["error"] is None:
            listing = await self._self_listed(meaning, headers, asker, subject)
            if "tools" in listing:
                declared, pin = await self._pins.declared(self._target, name)
        found = self._mcp.with_tool(meaning, declared, pin, self._settings.shell_tools,
                                    self._settings.sql_tools)
        if listing is not None:
            found["tool"]["self_listing"] = listing
        return found

    async def _self_listed(self, meaning: McpReading, headers: dict[str, str],
                           asker: Any, subject: Subject | None) -> SelfListing:
        """tollgate's own listing of the target's tools: how many, or why none."""
        if self._lister is None:
            return {"error": self._mcp.NO_LISTER}
        try:
            return {"tools": await self._lister.listed(self._target, meaning, headers, asker,
                                                       subject)}
        except self._mcp.ListingFailed as exc:
            return {"error": str(exc)}

    def probe(self, meaning: McpReading, name: str, declared: Any, pin: Any) -> McpReading:
        """A call with no arguments to a listed tool: whether it may be shown."""
        return self._mcp.probe(meaning, declared, name, pin, self._settings.shell_tools,
                               self._settings.sql_tools)

    @property
    def pins(self) -> ToolPins | None:
        return self._pins

    @staticmethod
    def refusal(body: dict[str, Any], status: int,
                meaning: McpReading | None) -> tuple[int, dict[str, Any]]:
        """A JSON-RPC error answering the request's id, which MCP clients raise with its
        message: over HTTP 200, as a server's own error (a 4xx makes the SDKs' transports
        fail rather than answer the call). A notification or a stream has no id to
        answer: the HTTP status stays. Headers that disagree with the body: 400 and
        -32020, as the protocol asks."""
        from extproc.interpret.mcp import HEADER_MISMATCH_CODE, HEADERS_DISAGREE, rpc_error

        rpc_id = meaning["id"] if meaning is not None and meaning["kind"] == "request" else None
        if meaning is not None and (meaning["error"] or "").startswith(HEADERS_DISAGREE):
            # SEP-2243: what routes by the headers must see the request the server runs.
            return 400, rpc_error(rpc_id, body, HEADER_MISMATCH_CODE)
        return (200 if rpc_id is not None else status), rpc_error(rpc_id, body)

    @staticmethod
    def in_place(refusal: dict[str, Any], meaning: McpReading | None) -> bytes | None:
        """On the HTTP+SSE transport a client reads every answer on its GET stream, never
        the POST's: a refused request goes upstream as a `ping` whose id carries the
        refusal, and the stream's reader turns the server's answer to it into the
        refusal (http/mcp_answer.py). None elsewhere: the POST's answer is read."""
        from extproc.interpret.mcp import refused_ping

        if (meaning is None or meaning["transport"] != "sse" or meaning["kind"] != "request"
                or meaning["id"] is None):
            return None
        return refused_ping(refusal)

    @staticmethod
    def reads_answer(_request: Request) -> bool:
        """Every answer is read: lists filtered, results masked, server requests decided."""
        return True

    def attributes(self, meaning: McpReading, request: Request | None) -> dict[str, Any]:
        """tollgate's summary, and OpenTelemetry's MCP conventions (`mcp.*`, the JSON-RPC
        id; a tools/call as GenAI's `execute_tool` of its tool, a prompts/get its
        prompt)."""
        found: dict[str, Any] = {"tollgate.mcp.kind": meaning["kind"]}
        if meaning["method"] is not None:
            found["tollgate.mcp.method"] = found["mcp.method.name"] = meaning["method"]
        if meaning["session"] is not None:
            found["tollgate.mcp.session"] = found["mcp.session.id"] = meaning["session"][:128]
        rpc_id = meaning["id"]
        if type(rpc_id) in (str, int):
            found["jsonrpc.request.id"] = str(rpc_id)[:128]
        if meaning["tool"] is not None:
            found["tollgate.mcp.tool"] = found["gen_ai.tool.name"] = meaning["tool"]["name"]
            found["gen_ai.operation.name"] = "execute_tool"
            listing = meaning["tool"].get("self_listing") or {}
            if "tools" in listing:
                found["tollgate.mcp.self_listed"] = listing["tools"]
            if "error" in listing:
                found["tollgate.mcp.self_listing_error"] = listing["error"]
        prompt = meaning["prompt"]
        if prompt is not None and isinstance(prompt["name"], str):
            found["gen_ai.prompt.name"] = prompt["name"][:128]
        if meaning["error"] is not None:
            found["tollgate.mcp.error"] = meaning["error"]
        version = request["headers"].get("mcp-protocol-version") if request else None
        if version:
            found["mcp.protocol.version"] = version[:32]
        return found

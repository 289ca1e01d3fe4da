"""Which handler reads an HTTP response: the target's inspection picks headers, body or
none, and a protocol whose answers are read as their own (a model's, an MCP server's)
gets its reader here, by the interpreter's key, so the readers of meaning never know the
front that drives them."""

from __future__ import annotations

from extproc.exchange.state import Exchange
from extproc.http.llm_answer import MODEL_ANSWER
from extproc.http.mcp_answer import ANSWER as MCP_ANSWER
from extproc.http.responses import BODY, HEADERS, ResponseHandler

READERS: dict[str, ResponseHandler] = {"llm": MODEL_ANSWER, "mcp": MCP_ANSWER}


def handler_for(exchange: Exchange) -> ResponseHandler | None:
    """The handler of this request's response, from what the target inspects and what the
    interpreter knows of the request (None: the response is not read at all)."""
    if exchange.response_mode == "none":
        return None
    if exchange.response_mode == "headers":
        return HEADERS
    interpreter = exchange.interpreter
    if (interpreter is not None and exchange.request is not None
            and interpreter.reads_answer(exchange.request)):
        return READERS[interpreter.key]
    return BODY

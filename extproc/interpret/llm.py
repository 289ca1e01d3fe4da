"""The LLM interpreter: an OpenAI-compatible model call (chat completions, the Responses
API) as policy input.

Policies refuse a model's tool call before the agent runs it (`run_shell` with
`rm -rf /`, `run_sql` with `DROP TABLE`): the gateway then answers a deny in place of the
model's answer. So requests and responses are read for meaning, in shapes the policy
pack is written against:

    chat_request(body)      -> {"api": "chat.completions", "model", "stream",
                                "messages": [{"role", "text", "tool_calls"}],
                                "tools": [{"name", "description"}],
                                "tool_calls": [], "finish_reason": None, "error"}
    responses_request(body) -> the same, "api": "responses" (`input` items as messages)
    chat_response(body)     -> {"tool_calls", "finish_reason", "text", "error"}, from a
                               chat.completion's choices or a Responses API `output`
    ChatStream              -> the same, assembled from a streamed answer of either API
    read_answer(bytes)      -> the same, from an answer's bytes, JSON or an event stream
                               whatever its Content-Type says (as clients read it)

    a tool call             -> {"id", "name", "arguments", "arguments_text",
                                "texts", "commands", "opaque", "writes", "sql", "error"}

A request's own `tool_calls` is always empty and its `finish_reason` null: a request
carries no new tool call, only the history's, which are under each assistant message
(already executed; a policy may look at them). The shapes match so that one rule can read
`tool_calls` in either phase.

JSON is read as leniently as clients read it (`loads`: Python's json, which takes NaN and
lone surrogates). A tool call's `arguments` is its decoded arguments string, or null when
that string is not JSON. `texts` is every string leaf of `arguments`, depth first, a
string that is itself JSON read into as well; when the arguments did not decode, the raw
string followed by the string values still readable in it (`{"cmd": "rm -rf /"` gives
`rm -rf /`: a lenient agent may run what a strict parser refuses). So that one tool call
costs bounded time, at most MAX_TEXTS texts of MAX_TEXT_CHARS characters in all are read
(1.7 s for a megabyte of one-letter words on a loaded 2-core machine, 1 ms for a 70 KB
command); past that the call's `error` says so, and the pack refuses it: a cut fails
closed.

`commands`, `opaque` and `writes` are `shell.read` of each text that
`shell.looks_like_shell`, and of each list of strings in the arguments taken as an argv
(`{"command": ["rm", "-rf", "/"]}`, and what it runs when it is `["bash", "-c", ...]`),
each command once. `sql` is the statements of each text whose
first keyword (after blanks, comments and `;`) starts a statement, and of the SQL a
database client's command line carries (`psql -c`, `mysql -e`, `sqlite3 db "..."`),
parsed by `extproc.interpret.sql.analyze` as PostgreSQL, MySQL and SQLite: the tool's
database is unknown, so the statements of every dialect that reads the text are listed
(MySQL runs the inside of `/*! ... */`, which PostgreSQL takes for a comment). When no
dialect reads it, or MySQL refuses its executable comments, one `{"kind": "unparsed",
"text", "error"}` entry (text cut at 2000) is there for a policy to refuse. Prose
starting with such a keyword ("Update the README") is such an entry too.

An `error` is one line: a body that is not a chat request or response, an answer that is
neither JSON nor an event stream, a stream line that is no event field, an upstream error
object, a stream event whose data is not JSON. What could be read is filled in anyway.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import orjson

from extproc.codecs import jsonenc
from extproc.codecs.jsonenc import json_type
from extproc.codecs.sse import EventSplitter, event_data
from extproc.interpret import shell
from extproc.interpret.instructions import kinds_in

if TYPE_CHECKING:
    from extproc.interpret.sql import Statement

MAX_TEXTS = 1024
MAX_TEXT_CHARS = 1024 * 1024  # over all the texts of one tool call
_UNPARSED_CHARS = 2000
_SQL_DIALECTS = ("postgres", "mysql", "sqlite")
# The first word of a statement in PostgreSQL, MySQL or SQLite (a parenthesised query
# or a stray `;` too): a text starting so is read as SQL.
_SQL_START = re.compile(
    r"(?:\s++|--[^\n]*+|#[^\n]*+|/\*.*?\*/|;)*+"
    r"(?:\(|(?:select|insert|update|delete|merge|drop|truncate|alter|create|grant|revoke"
    r"|copy|do|call|with|explain|describe|desc|vacuum|analyze|attach|detach|pragma|replace"
    r"|upsert|exec|execute|prepare|deallocate|begin|start|commit|rollback|end|abort"
    r"|savepoint|release|set|reset|show|use|values|table|lock|unlock|reindex|cluster"
    r"|refresh|discard|load|listen|notify|unlisten|comment|security|import|declare|fetch"
    r"|move|close|checkpoint|rename|handler|optimize|repair|flush|kill|shutdown|install"
    r"|uninstall|purge|reassign)\b)",
    re.I | re.S,
)
# Database clients whose options carry SQL: `psql -c ...`, `mysql -e ...`.
_SQL_OPTIONS = {"psql": ("-c", "--command"), "mysql": ("-e", "--execute"),
                "mariadb": ("-e", "--execute"), "sqlite3": (), "duckdb": ("-c",),
                "clickhouse-client": ("-q", "--query"), "cockroach": ("-e", "--execute")}
# A JSON string literal (the last one may be cut off), and what follows an object key.
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)(?:"|\Z)', re.S)
_KEY_END = re.compile(r"\s*:")
_TOOL_FINISH = ("tool_calls", "function_call")
_SURROGATE = re.compile("[\ud800-\udfff]")
# An event stream's first line: a field or a comment (after a byte-order mark, blank lines).
_SSE_START = re.compile(rb"(?:\xef\xbb\xbf)?[\r\n]*(?:data|event|id|retry)?[:\r\n]")
_RESPONSES = -2  # the tool index of a Responses API call: its output item is its index
_ITEM_ARGUMENTS = ("arguments", "input", "action", "code")


class Unparsed(TypedDict):
    """SQL that no dialect reads (or whose MySQL executable comments MySQL refused)."""

    kind: Literal["unparsed"]
    text: str  # cut at _UNPARSED_CHARS
    error: str | None


class ToolCall(TypedDict):
    id: str | None
    name: str | None
    arguments: Any  # decoded JSON; null when the arguments string is no JSON
    arguments_text: str
    texts: list[str]
    commands: list[list[str]]
    opaque: list[shell.Opaque]
    writes: list[str]
    sql: list[Statement | Unparsed]
    error: str | None


class Message(TypedDict):
    role: str | None
    text: str
    tool_calls: list[ToolCall]


class Tool(TypedDict):
    name: str | None
    description: str


Api = Literal["chat.completions", "responses"]


class LlmReading(TypedDict):
    """`input.llm`: a model request, then (response phase) with its answer's tool calls."""

    api: Api
    model: str | None
    stream: bool
    messages: list[Message]
    tools: list[Tool]
    tool_calls: list[ToolCall]
    finish_reason: str | None
    error: str | None


class Answer(TypedDict):
    """What a model's answer (whole or streamed) holds that a policy reads."""

    tool_calls: list[ToolCall]
    finish_reason: str | None
    text: str
    error: str | None


def told_since_last_turn(reading: Any) -> tuple[str, ...]:
    """The kinds of words to the model (interpret/instructions.py) in the tool results a
    request carries since the model's last turn: what the agent's tools answered, the
    model reads now for the first time (older ones were read with an earlier request).
    Tools the agent reached without the gateway included."""
    messages = reading.get("messages") if isinstance(reading, dict) else None
    kinds: dict[str, None] = {}
    for message in reversed(messages if isinstance(messages, list) else []):
        if message.get("role") == "assistant":
            break
        if message.get("role") == "tool" and message.get("text"):
            kinds.update(dict.fromkeys(kinds_in(message["text"])))
    return tuple(kinds)


def _request_reading(api: Api, body: Any) -> LlmReading:
    """A model request's reading before its messages and tools: what either API says alike
    (an error when the body is not an object)."""
    reading: LlmReading = {
        "api": api, "model": None, "stream": False, "messages": [], "tools": [],
        "tool_calls": [], "finish_reason": None, "error": None,
    }
    if not isinstance(body, dict):
        reading["error"] = f"request body is a JSON {json_type(body)}, not an object"
    else:
        reading["model"] = _str(body.get("model"))
        reading["stream"] = body.get("stream") is True
    return reading


def chat_request(body: Any) -> LlmReading:
    """A chat/completions request body (decoded JSON, of any type) as policy input."""
    result = _request_reading("chat.completions", body)
    if not isinstance(body, dict):
        return result
    errors: list[str] = []
    messages = body.get("messages")
    if messages is None:
        errors.append("request has no messages")
    elif not isinstance(messages, list):
        errors.append(f"messages is a JSON {json_type(messages)}, not an array")
    else:
        result["messages"] = [_message(m, i, errors) for i, m in enumerate(messages)]
    result["tools"] = _tools(body.get("tools"), "tools", errors) + _tools(
        body.get("functions"), "functions", errors
    )
    result["error"] = errors[0] if errors else None
    return result


def responses_request(body: Any) -> LlmReading:
    """A Responses API request body (`POST .../responses`) in the shape of `chat_request`:
    `instructions` as a system message, `input` (a string, or items) as messages, a
    `*_call` item of the history as an assistant message's tool call, a tool's output as a
    `tool` message; `tools` as offered."""
    result = _request_reading("responses", body)
    if not isinstance(body, dict):
        return result
    errors: list[str] = []
    messages = result["messages"]
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "text": body["instructions"], "tool_calls": []})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "text": items, "tool_calls": []})
    elif isinstance(items, list):
        messages += [_input_item(item) for item in items]
    elif items is not None:
        errors.append(f"input is a JSON {json_type(items)}, not a string or an array")
    result["tools"] = _tools(body.get("tools"), "tools", errors)
    result["error"] = errors[0] if errors else None
    return result


def _input_item(item: Any) -> Message:
    call = _output_item(item)
    if call is not None:
        return {"role": "assistant", "text": "", "tool_calls": [tool_call(*call)]}
    if not isinstance(item, dict):
        return {"role": None, "text": "", "tool_calls": []}
    if str(item.get("type", "")).endswith("_call_output"):
        output = item.get("output")
        return {"role": "tool", "text": output if isinstance(output, str) else "",
                "tool_calls": []}
    return {"role": _str(item.get("role")), "text": _content_text(item.get("content")),
            "tool_calls": []}


def read_answer(content: bytes) -> tuple[Answer, Any]:
    """A whole answer as policy input, whatever its declared content type: a client reads
    JSON from a `text/plain` body and events from an `application/json` one, so the body
    is sniffed. JSON (read as `loads` reads it) as `chat_response`, an event stream as
    `ChatStream`; anything else is an `error`. Returns the reading and the JSON body (None
    when it is no JSON)."""
    if not content.strip():
        return _answer(), None
    if content.lstrip()[:1] not in (b"{", b"[") and _SSE_START.match(content):
        stream = ChatStream()
        stream.feed(content)
        stream.finish()
        return stream.reading(), None
    try:
        body = loads(content)
    except ValueError as exc:
        why = " ".join(str(exc).split())
        return _answer(f"the answer is neither JSON nor an event stream ({why})"), None
    return chat_response(body), body


def _answer(error: str | None = None) -> Answer:
    return {"tool_calls": [], "finish_reason": None, "text": "", "error": error}


def chat_response(body: Any) -> Answer:
    """A non-streamed answer (decoded JSON) as policy input: a chat.completion's tool calls
    over all choices, the texts of the choices joined with newlines; a Responses API
    `response`'s output items that call a tool, and its output texts."""
    result = _answer()
    if not isinstance(body, dict):
        result["error"] = f"response body is a JSON {json_type(body)}, not an object"
        return result
    choices, output = body.get("choices"), body.get("output")
    if body.get("error"):
        result["error"] = _upstream_error(body["error"])
    elif not isinstance(choices, list) and not isinstance(output, list):
        result["error"] = "response has no choices"
    if isinstance(output, list):
        calls, output_texts = _output(output)
        result["tool_calls"], result["text"] = calls, "\n".join(output_texts)
        status = body.get("status")
        result["finish_reason"] = "tool_calls" if calls else _str(status)
    if not isinstance(choices, list):
        return result
    texts: list[str] = []
    reasons: dict[int, str] = {}
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            texts.append(_content_text(message.get("content")))
            result["tool_calls"].extend(_message_tool_calls(message))
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            reasons[_index(choice.get("index"), position)] = reason
    result["text"] = "\n".join(t for t in texts if t)
    result["finish_reason"] = _overall_finish(reasons)
    return result


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event of a streamed response."""

    raw: bytes  # exactly as received, its terminating blank line included
    tool_delta: bool  # carries a tool_calls (or legacy function_call) delta
    done: bool  # `data: [DONE]`
    # Its data as parsed JSON (None: no data, [DONE], not JSON), so that no one parses an
    # event twice (masking rewrites it). A copy of its own: changing it changes nothing here.
    payload: Any = None


@dataclass(slots=True)
class _PartialCall:
    id: str | None = None
    name: str | None = None
    fragments: list[str] = field(default_factory=list)
    # Whole arguments a stream also states (Responses API `.done` events, the final
    # `response`): a client may run these rather than the deltas, so each is judged.
    whole: list[str] = field(default_factory=list)


class ChatStream:
    """A streamed chat/completions response (server-sent `chat.completion.chunk` events),
    read as it arrives.

    `feed` returns the events that the bytes so far complete, each with its bytes exactly
    as received, so the gateway can forward the events it allows unchanged and hold those
    with tool deltas until the whole call is known and decided. Events end at a blank
    line (LF, CRLF or CR line ends); `data` lines are joined per the SSE spec; comments
    and other fields pass through. Whatever the cuts between chunks, the events and the
    assembled result are the same.

    Tool-call deltas are assembled per (choice index, tool index): `id` and name from the
    first delta carrying them, arguments concatenated. `tool_calls` builds the tool-call
    shapes (decoding, commands, SQL) when read, once per change, not per delta.
    """

    def __init__(self) -> None:
        self._events = EventSplitter()
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[tuple[int, int], _PartialCall] = {}
        self._reasons: dict[int, str] = {}
        self._assembled: list[ToolCall] | None = None
        self.error: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Take the next bytes; return the events they complete."""
        return [self._dispatch(raw) for raw in self._events.feed(chunk)]

    def finish(self) -> list[Event]:
        """The end of the stream: return what is left, an unterminated last event included."""
        return [self._dispatch(raw) for raw in self._events.finish()]

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls assembled so far, in (choice, tool index) order; a call whose
        stream also states its whole arguments otherwise, once more per other version."""
        if self._assembled is None:
            self._assembled = []
            for _, c in sorted(self._calls.items()):
                assembled = "".join(c.fragments)
                versions = [assembled] if assembled or not c.whole else []
                versions += [w for w in dict.fromkeys(c.whole) if w != assembled]
                self._assembled += [tool_call(c.id, c.name, v) for v in versions]
        return self._assembled

    def reading(self) -> Answer:
        """The stream as `chat_response` reads a whole answer."""
        return {"tool_calls": self.tool_calls, "finish_reason": self.finish_reason,
                "text": self.text, "error": self.error}

    @property
    def text(self) -> str:
        """The assistant content so far, the choices' texts joined with newlines."""
        return "\n".join("".join(parts) for _, parts in sorted(self._texts.items()))

    @property
    def finish_reason(self) -> str | None:
        return _overall_finish(self._reasons)

    def _dispatch(self, raw: bytes) -> Event:
        """Read one event: only its `data` matters to what the stream means."""
        data, foreign = event_data(raw)
        if foreign:
            # Not an event stream (JSON served as one?): what a client makes of it is unknown.
            self._fail("the stream holds a line that is no server-sent event field")
        if data is None:
            return Event(raw, tool_delta=False, done=False)
        if data.startswith(b"[DONE]"):  # as the openai client tests it
            return Event(raw, tool_delta=False, done=True)
        try:
            chunk = loads(data)
        except ValueError as exc:
            self._fail(f"stream event data is not JSON: {' '.join(str(exc).split())}")
            return Event(raw, tool_delta=False, done=False)
        return Event(raw, tool_delta=self._apply(chunk), done=False, payload=chunk)

    def _apply(self, chunk: Any) -> bool:
        """Fold one chunk into the result; whether it carried a tool-call delta."""
        if not isinstance(chunk, dict):
            self._fail(f"stream event data is a JSON {json_type(chunk)}, not an object")
            return False
        if isinstance(chunk.get("type"), str) and "choices" not in chunk:
            return self._apply_event(chunk)
        if chunk.get("error"):
            self._fail(_upstream_error(chunk["error"]))
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return False
        return any([self._apply_choice(choice, position)
                    for position, choice in enumerate(choices) if isinstance(choice, dict)])

    def _apply_choice(self, choice: dict[str, Any], position: int) -> bool:
        """Fold one choice of a chunk; whether its delta carried a tool call's."""
        index = _index(choice.get("index"), position)
        tool_delta = False
        delta = choice.get("delta")
        if delta and isinstance(delta, dict):
            content = delta.get("content")
            if content and isinstance(content, str):
                self._texts.setdefault(index, []).append(content)
            calls = delta.get("tool_calls")
            if calls and isinstance(calls, list):
                tool_delta = True
                for n, call in enumerate(calls):
                    if isinstance(call, dict):
                        key = (index, _index(call.get("index"), n))
                        self._add(key, call.get("id"), _call_spec(call))
            legacy = delta.get("function_call")
            if isinstance(legacy, dict):
                tool_delta = True
                self._add((index, -1), None, legacy)
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self._reasons[index] = reason
        return tool_delta

    def _apply_event(self, event: dict[str, Any]) -> bool:
        """Fold one Responses API event (`response.*`, `error`) into the result: text
        deltas, a tool item's deltas and whole arguments (`.done`, `output_item.done`, the
        final `response`); whether it concerned a tool call."""
        kind, index = event["type"], _index(event.get("output_index"), 0)
        if kind == "error":
            self._fail(_upstream_error(event))
            return False
        if kind == "response.output_text.delta":
            if isinstance(event.get("delta"), str):
                self._texts.setdefault(index, []).append(event["delta"])
            return False
        response = event.get("response")
        if isinstance(response, dict):  # response.created / .completed / .failed ...
            if response.get("error"):
                self._fail(_upstream_error(response["error"]))
            output = response.get("output")
            items = enumerate(output) if isinstance(output, list) else ()
            return any([self._item(i, item, whole=True) for i, item in items])
        if "item" in event:  # response.output_item.added / .done
            return self._item(index, event["item"], whole=kind.endswith(".done"))
        if not kind.endswith(("_arguments.delta", "_arguments.done", "_input.delta",
                              "_input.done")):
            return False
        key = (index, _RESPONSES)
        if kind.endswith(".delta"):
            self._add(key, None, {"arguments": event.get("delta")})
        else:
            self._add(key, None, {})
            self._whole(key, _spec_arguments(event))
        return True

    def _item(self, index: int, item: Any, *, whole: bool) -> bool:
        """A Responses API output item; whether it is a tool call."""
        call = _output_item(item)
        if call is None:
            return False
        key = (index, _RESPONSES)
        call_id, name, arguments = call
        self._add(key, call_id, {"name": name} if whole else {"name": name,
                                                               "arguments": arguments})
        if whole:
            self._whole(key, arguments)
        return True

    def _whole(self, key: tuple[int, int], arguments: Any) -> None:
        text = _arguments_text(arguments)
        if text:
            self._calls[key].whole.append(text)
            self._assembled = None

    def _add(self, key: tuple[int, int], call_id: Any, spec: dict[str, Any]) -> None:
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _PartialCall()
        if call.id is None:
            call.id = _str(call_id)
        if call.name is None:
            call.name = _str(spec.get("name"))
        fragment = _arguments_text(_spec_arguments(spec))
        if fragment:
            call.fragments.append(fragment)
        self._assembled = None

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message


def _output(output: list[Any]) -> tuple[list[ToolCall], list[str]]:
    """A Responses API `output`: its tool calls, and the texts of its messages."""
    calls: list[ToolCall] = []
    texts: list[str] = []
    for item in output:
        call = _output_item(item)
        if call is not None:
            calls.append(tool_call(*call))
        elif isinstance(item, dict) and item.get("type") == "message":
            texts.append(_content_text(item.get("content")))
    return calls, [t for t in texts if t]


def _output_item(item: Any) -> tuple[Any, str | None, Any] | None:
    """(id, name, arguments) of a Responses API output item that calls a tool (`*_call`:
    function_call, custom_tool_call, local_shell_call, mcp_call...), else None. Its
    arguments are `arguments`, a custom tool's `input`, a local shell's `action` (whose
    `command` is an argv) or the `code` to run."""
    if not isinstance(item, dict):
        return None
    kind = item.get("type")
    if not isinstance(kind, str) or not kind.endswith("_call"):
        return None
    arguments = next((item[k] for k in _ITEM_ARGUMENTS if item.get(k) is not None), None)
    return item.get("call_id") or item.get("id"), _str(item.get("name")) or kind, arguments


def looks_like_sql(text: str) -> bool:
    """Whether the first keyword of `text`, after blanks and comments, starts SQL."""
    return _SQL_START.match(text) is not None


class _Budget:
    """What one tool call's reading may take: MAX_TEXTS texts, MAX_TEXT_CHARS characters in
    all. Past it nothing more is read and the call says so (its `error`): a cut fails closed."""

    __slots__ = ("chars", "cut", "texts")

    def __init__(self) -> None:
        self.texts = self.chars = 0
        self.cut = False

    def take(self, text: str) -> bool:
        if self.texts >= MAX_TEXTS or self.chars + len(text) > MAX_TEXT_CHARS:
            self.cut = True
            return False
        self.texts += 1
        self.chars += len(text)
        return True


def tool_call(call_id: Any, name: Any, arguments: Any, kind: str | None = None) -> ToolCall:
    """The tool-call shape, from an id, a name and the arguments as sent (a JSON string
    normally; an object as some OpenAI-compatible servers send it). `kind`: what a tool
    is declared to run (an MCP target's `shell` or `sql` tools): then every string of its
    arguments is read as such, not only those that look like it."""
    text = _arguments_text(arguments)
    decoded = _decode(text) if isinstance(arguments, str) else arguments
    budget = _Budget()
    if decoded is not None:
        texts = _string_leaves(decoded, budget)
    elif text.strip():
        texts = _salvaged_strings(text, budget)
    else:
        texts = []
    reading = shell.Reading()
    for t in texts:
        if kind == "shell" or shell.looks_like_shell(t):
            _merge(reading, shell.read(t))
    if not budget.cut:  # the lists' strings are texts too: within the budget
        for argv in _argv_lists(decoded):
            _merge(reading, shell.argv_read(argv))
    reading = _once(reading)
    sql_texts = [t for t in texts if kind == "sql" or looks_like_sql(t)]
    sql_texts += [t for argv in reading.commands for t in _client_sql(argv)]
    return {
        "id": _str(call_id),
        "name": _str(name),
        "arguments": decoded,
        "arguments_text": text,
        "texts": texts,
        "commands": reading.commands,
        "opaque": reading.opaque,
        "writes": reading.writes,
        "sql": [s for t in sql_texts for s in _sql_statements(t)],
        "error": (f"the arguments hold more than {MAX_TEXTS} strings or {MAX_TEXT_CHARS} "
                  "characters: the rest was not read") if budget.cut else None,
    }


def _merge(into: shell.Reading, reading: shell.Reading) -> None:
    into.commands += reading.commands
    into.opaque += reading.opaque
    into.writes += reading.writes


def _once(reading: shell.Reading) -> shell.Reading:
    """Each command, opaque command and write once, in order: the policy's cost grows with
    their number (the embedded engine stops at 25,000 instructions, some 250 distinct
    commands: a policy error, refused)."""
    opaque = {(tuple(o["argv"]), o["why"]): o for o in reading.opaque}
    return shell.Reading(
        [list(c) for c in dict.fromkeys(map(tuple, reading.commands))],
        list(opaque.values()),
        list(dict.fromkeys(reading.writes)),
    )


def _argv_lists(value: Any) -> list[list[str]]:
    """Lists of strings in the arguments, each an argv as such tools take one
    (`{"command": ["rm", "-rf", "/"]}`)."""
    found: list[list[str]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            if item and all(isinstance(v, str) for v in item):
                found.append(item)
            else:
                stack.extend(item)
    return found


def _client_sql(argv: list[str]) -> list[str]:
    """The SQL a database client's command line runs (`psql -c "DROP TABLE t"`, and for
    sqlite3 any operand after the database file)."""
    options = _SQL_OPTIONS.get(argv[0]) if argv else None
    if options is None:
        return []
    if not options:  # sqlite3 DB "SQL..."
        operands = [a for a in argv[1:] if not a.startswith("-")]
        return operands[1:]
    found = []
    for i, arg in enumerate(argv[1:], 1):
        for option in options:
            if arg == option and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif arg.startswith(option) and arg != option:
                found.append(arg[len(option):].removeprefix("="))
    return found


def _sql_statements(text: str) -> list[Statement | Unparsed]:
    """The statements of every dialect that reads `text`: a tool's database is unknown, and
    each reads some texts its own way (MySQL runs `/*! ... */`, which PostgreSQL takes
    for a comment), so a statement any of them would run is listed."""
    # Imported when SQL shows up: the analyzer brings in the SQL parsers.
    from extproc.interpret.sql import analyze

    first_error = None
    statements: list[Statement | Unparsed] = []
    seen: set[tuple[Any, ...]] = set()
    for dialect in _SQL_DIALECTS:
        analysis = analyze(text, dialect)
        first_error = first_error or analysis["error"]
        for statement in analysis["statements"]:
            key = (statement["kind"], statement["object"], statement["text"],
                   statement["has_where"], statement["nested"], tuple(statement["effects"]),
                   statement["bounded"])
            if key not in seen:
                seen.add(key)
                statements.append(statement)
    if not statements or (first_error and "/*!" in text):
        statements.append({"kind": "unparsed", "text": text[:_UNPARSED_CHARS],
                           "error": first_error})
    return statements


def _string_leaves(value: Any, budget: _Budget) -> list[str]:
    """Every string in `value`, depth first in order (not keys), within the budget; a
    string that is itself JSON (`{"input": "{\\"command\\": ...}"}`) is read into too."""
    leaves: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not budget.take(item):
                break
            leaves.append(item)
            if item.lstrip()[:1] in ("{", "[") and (inner := _decode(item)) is not None:
                stack.append(inner)
        elif isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return leaves


def _salvaged_strings(text: str, budget: _Budget) -> list[str]:
    """Arguments that are no JSON: the text, then the string values still readable in it
    (`{"cmd": "rm -rf /"`): a lenient agent may run what a strict parser refuses."""
    found: list[str] = []
    if not budget.take(text):
        return found
    found.append(text)
    for m in _JSON_STRING.finditer(text):
        if _KEY_END.match(text, m.end()):
            continue
        value = _decode(f'"{m.group(1)}"')
        if isinstance(value, str):
            if not budget.take(value):
                break
            found.append(value)
    return found


def _decode(text: str) -> Any:
    """JSON text as clients read it, or None when it is none."""
    if not text.strip():
        return None
    try:
        return loads(text)
    except ValueError:
        return None


def loads(data: bytes | str) -> Any:
    """JSON read as leniently as the clients read it: Python's json (the openai client's),
    which takes NaN, Infinity, lone surrogates (`\\udcff`) and, from bytes, UTF-16 and
    UTF-32. orjson first (it reads RFC 8259 ~5x faster); what only Python's json reads
    comes back with NaN and Infinity as null and a lone surrogate as U+FFFD, so that the
    policy input stays valid JSON. Raises ValueError when it is none."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return _clean(json.loads(data))
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return "" if arguments is None else jsonenc.dumps(arguments)


def _message(message: Any, position: int, errors: list[str]) -> Message:
    if not isinstance(message, dict):
        errors.append(f"messages[{position}] is a JSON {json_type(message)}, not an object")
        return {"role": None, "text": "", "tool_calls": []}
    return {
        "role": _str(message.get("role")),
        "text": _content_text(message.get("content")),
        "tool_calls": _message_tool_calls(message),
    }


def _message_tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    """An assistant message's tool calls (`function` or `custom`), and its legacy
    `function_call`."""
    found: list[ToolCall] = []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            spec = _call_spec(call)
            found.append(tool_call(call.get("id"), spec.get("name"), _spec_arguments(spec)))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        found.append(tool_call(None, legacy.get("name"), legacy.get("arguments")))
    return found


def _call_spec(call: dict[str, Any]) -> dict[str, Any]:
    """What names a tool call and holds its arguments: `function`, or `custom` (a custom
    tool's free-form `input`)."""
    spec = call.get("function") or call.get("custom")
    return spec if isinstance(spec, dict) else {}


def _spec_arguments(spec: dict[str, Any]) -> Any:
    return spec["arguments"] if "arguments" in spec else spec.get("input")


def _content_text(content: Any) -> str:
    """A message's content as text: a string as is, the text parts of a list joined with
    newlines (images, audio, files skipped)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") in ("text", "input_text", "output_text")
        and isinstance(part.get("text"), str)
    )


def _tools(tools: Any, key: str, errors: list[str]) -> list[Tool]:
    """The tools offered: `tools` entries (function tools by their function's name, others
    by their type) or legacy `functions` entries."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        errors.append(f"{key} is a JSON {json_type(tools)}, not an array")
        return []
    found: list[Tool] = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict):
            errors.append(f"{key}[{position}] is a JSON {json_type(tool)}, not an object")
            continue
        kind = tool.get("type")
        if key == "tools" and kind != "function":
            found.append({"name": _str(kind), "description": ""})
            continue
        spec = tool.get("function") if key == "tools" else tool
        if not isinstance(spec, dict):
            spec = tool  # the flat form: {"type": "function", "name": ..., ...}
        description = spec.get("description")
        found.append({
            "name": _str(spec.get("name")),
            "description": description if isinstance(description, str) else "",
        })
    return found


def _overall_finish(reasons: dict[int, str]) -> str | None:
    """The first choice's finish reason, unless a choice stopped for tool calls: that is
    the one a policy acts on."""
    if not reasons:
        return None
    return next((r for r in reasons.values() if r in _TOOL_FINISH), reasons[min(reasons)])


def _upstream_error(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    text = message if isinstance(message, str) else jsonenc.dumps(message)
    return "upstream error: " + " ".join(text.split())


def _index(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None

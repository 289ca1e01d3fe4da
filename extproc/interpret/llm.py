"""The LLM interpreter: an OpenAI-compatible chat/completions exchange as policy input.

Policies refuse a model's tool call before the agent runs it (`run_shell` with
`rm -rf /`, `run_sql` with `DROP TABLE`): the gateway then answers a deny in place of the
model's answer. So requests and responses are read for meaning, in shapes the policy
pack is written against:

    chat_request(body)  -> {"api": "chat.completions", "model", "stream",
                            "messages": [{"role", "text", "tool_calls"}],
                            "tools": [{"name", "description"}],
                            "tool_calls": [], "finish_reason": None, "error"}
    chat_response(body) -> {"tool_calls", "finish_reason", "text", "error"}
    ChatStream          -> the same as chat_response, assembled from a streamed response

    a tool call         -> {"id", "name", "arguments", "arguments_text",
                            "texts", "commands", "sql"}

A request's own `tool_calls` is always empty and its `finish_reason` null: a request
carries no new tool call, only the history's, which are under each assistant message
(already executed; a policy may look at them). The shapes match so that one rule can read
`tool_calls` in either phase.

A tool call's `arguments` is its JSON-decoded arguments string (RFC 8259: NaN or a lone
surrogate does not decode), or null when that string is not JSON. `texts` is every string
leaf of `arguments`, depth first, a string that is itself JSON read into as well; when the
arguments did not decode, the raw string followed by the string values still readable in
it (`{"cmd": "rm -rf /"` gives `rm -rf /`: a lenient agent may run what a strict parser
refuses). Caps, so that one tool call costs bounded time: at most 256 texts (MAX_TEXTS),
each cut at 64 Ki characters (MAX_TEXT_CHARS).

`commands` is `shell.commands` of each text that `shell.looks_like_shell`, and each list
of strings in the arguments taken as an argv (`{"command": ["rm", "-rf", "/"]}`, and what
it runs when it is `["bash", "-c", ...]`). `sql` is the statements of each text whose
first keyword (after blanks, comments and `;`) starts a statement, and of the SQL a
database client's command line carries (`psql -c`, `mysql -e`, `sqlite3 db "..."`),
parsed by `extproc.interpret.sql.analyze` as PostgreSQL, MySQL and SQLite: the tool's
database is unknown, so the statements of every dialect that reads the text are listed
(MySQL runs the inside of `/*! ... */`, which PostgreSQL takes for a comment). When no
dialect reads it, or MySQL refuses its executable comments, one `{"kind": "unparsed",
"text", "error"}` entry (text cut at 2000) is there for a policy to refuse. Prose
starting with such a keyword ("Update the README") is such an entry too.

An `error` is one line: a body that is not a chat request or response, an upstream error
object, a stream event whose data is not JSON. What could be read is filled in anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc import jsonenc
from extproc.interpret import shell
from extproc.jsonenc import json_type

MAX_TEXTS = 256
MAX_TEXT_CHARS = 64 * 1024
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
_LINE_END = re.compile(rb"\r\n|\r|\n")
# A line end then a blank line; a CR is a line end of its own only when no LF follows it.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_CR, _LF, _CR_BYTE = 0x0D, 0x0A, b"\r"


def chat_request(body: Any) -> dict[str, Any]:
    """A chat/completions request body (decoded JSON, of any type) as policy input."""
    result: dict[str, Any] = {
        "api": "chat.completions", "model": None, "stream": False, "messages": [],
        "tools": [], "tool_calls": [], "finish_reason": None, "error": None,
    }
    if not isinstance(body, dict):
        result["error"] = f"request body is a JSON {json_type(body)}, not an object"
        return result
    errors: list[str] = []
    result["model"] = _str(body.get("model"))
    result["stream"] = body.get("stream") is True
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


def chat_response(body: Any) -> dict[str, Any]:
    """A non-streamed chat.completion (decoded JSON) as policy input: tool calls over all
    choices; the texts of the choices joined with newlines."""
    result: dict[str, Any] = {"tool_calls": [], "finish_reason": None, "text": "", "error": None}
    if not isinstance(body, dict):
        result["error"] = f"response body is a JSON {json_type(body)}, not an object"
        return result
    choices = body.get("choices")
    if body.get("error"):
        result["error"] = _upstream_error(body["error"])
    elif not isinstance(choices, list):
        result["error"] = "response has no choices"
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
        self._buffer = bytearray()  # from the start of the current event
        self._search = 0  # where an event's end may start in the buffer, at the earliest
        self._cr_seen = False  # CR line ends are possible (else events end at LF LF)
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[tuple[int, int], _PartialCall] = {}
        self._reasons: dict[int, str] = {}
        self._assembled: list[dict[str, Any]] | None = None
        self.error: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Take the next bytes; return the events they complete."""
        self._cr_seen = self._cr_seen or _CR_BYTE in chunk
        self._buffer += chunk
        return self._complete_events(final=False)

    def finish(self) -> list[Event]:
        """The end of the stream: return what is left, an unterminated last event included."""
        events = self._complete_events(final=True)
        if self._buffer:
            events.append(self._dispatch(bytes(self._buffer)))
            self._buffer.clear()
            self._search = 0
        return events

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls assembled so far, in (choice, tool index) order."""
        if self._assembled is None:
            self._assembled = [
                _tool_call(c.id, c.name, "".join(c.fragments))
                for _, c in sorted(self._calls.items())
            ]
        return self._assembled

    @property
    def text(self) -> str:
        """The assistant content so far, the choices' texts joined with newlines."""
        return "\n".join("".join(parts) for _, parts in sorted(self._texts.items()))

    @property
    def finish_reason(self) -> str | None:
        return _overall_finish(self._reasons)

    def _complete_events(self, *, final: bool) -> list[Event]:
        buffer, size = self._buffer, len(self._buffer)
        events: list[Event] = []
        start = 0
        while start < size:
            if self._cr_seen:
                # A blank line right at the start is an (empty) event of its own.
                m = _LINE_END.match(buffer, start) or _EVENT_END.search(buffer, self._search)
                if m is None:
                    self._search = max(start, size - 3)  # an end may begin in the last 3 bytes
                    break
                if m.end() == size and buffer[-1] == _CR and not final:
                    self._search = m.start()  # maybe the first half of a CRLF: wait for it
                    break
                end = m.end()
            elif buffer[start] == _LF:
                end = start + 1
            else:
                # LF only so far, as every API sends: memchr-fast, ~3x the regex's speed.
                found = buffer.find(b"\n\n", self._search)
                if found < 0:
                    self._search = max(start, size - 1)
                    break
                end = found + 2
            events.append(self._dispatch(bytes(buffer[start:end])))
            start = self._search = end
        del buffer[:start]
        self._search -= start
        return events

    def _dispatch(self, raw: bytes) -> Event:
        """Read one event: only its `data` matters to what the stream means."""
        data = _data(raw)
        if data is None:
            return Event(raw, tool_delta=False, done=False)
        if data.startswith(b"[DONE]"):  # as the openai client tests it
            return Event(raw, tool_delta=False, done=True)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self._fail(f"stream event data is not JSON: {exc}")
            return Event(raw, tool_delta=False, done=False)
        return Event(raw, tool_delta=self._apply(chunk), done=False, payload=chunk)

    def _apply(self, chunk: Any) -> bool:
        """Fold one chunk into the result; whether it carried a tool-call delta."""
        if not isinstance(chunk, dict):
            self._fail(f"stream event data is a JSON {json_type(chunk)}, not an object")
            return False
        if chunk.get("error"):
            self._fail(_upstream_error(chunk["error"]))
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return False
        tool_delta = False
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                continue
            index = _index(choice.get("index"), position)
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


def _data(raw: bytes) -> bytes | None:
    """An event's data lines joined with LF (the SSE spec), or None when it has none."""
    data = []
    for line in raw.split(b"\n") if _CR_BYTE not in raw else _LINE_END.split(raw):
        if line.startswith(b"data"):
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value[1:] if value[:1] == b" " else value)
    return b"\n".join(data) if data else None


def looks_like_sql(text: str) -> bool:
    """Whether the first keyword of `text`, after blanks and comments, starts SQL."""
    return _SQL_START.match(text) is not None


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """The tool-call shape, from an id, a name and the arguments as sent (a JSON string
    normally; an object as some OpenAI-compatible servers send it)."""
    text = _arguments_text(arguments)
    decoded = _decode(text) if isinstance(arguments, str) else arguments
    if decoded is not None:
        texts = _string_leaves(decoded)
    elif text.strip():
        texts = [text[:MAX_TEXT_CHARS], *_salvaged_strings(text)]
    else:
        texts = []
    commands = [c for t in texts if shell.looks_like_shell(t) for c in shell.commands(t)]
    commands += _argv_lists(decoded)
    sql_texts = [t for t in texts if looks_like_sql(t)]
    sql_texts += [t for argv in commands for t in _client_sql(argv)]
    return {
        "id": _str(call_id),
        "name": _str(name),
        "arguments": decoded,
        "arguments_text": text,
        "texts": texts,
        "commands": commands,
        "sql": [s for t in sql_texts for s in _sql_statements(t)],
    }


def _argv_lists(value: Any) -> list[list[str]]:
    """Lists of strings in the arguments, each an argv as such tools take one
    (`{"command": ["rm", "-rf", "/"]}`), with what it runs when it is a shell."""
    found: list[list[str]] = []
    stack = [value]
    while stack and len(found) < MAX_TEXTS:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            if item and all(isinstance(v, str) for v in item):
                found += shell.argv_commands([v[:MAX_TEXT_CHARS] for v in item[:MAX_TEXTS]])
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


def _sql_statements(text: str) -> list[dict[str, Any]]:
    """The statements of every dialect that reads `text`: a tool's database is unknown, and
    each reads some texts its own way (MySQL runs `/*! ... */`, which PostgreSQL takes
    for a comment), so a statement any of them would run is listed."""
    # Imported when SQL shows up: the analyzer brings in the SQL parsers.
    from extproc.interpret.sql import analyze

    first_error = None
    statements: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for dialect in _SQL_DIALECTS:
        analysis = analyze(text, dialect)
        first_error = first_error or analysis["error"]
        for statement in analysis["statements"]:
            key = (statement["kind"], statement["object"], statement["text"],
                   statement["has_where"], statement["nested"])
            if key not in seen:
                seen.add(key)
                statements.append(statement)
    if not statements or (first_error and "/*!" in text):
        statements.append({"kind": "unparsed", "text": text[:_UNPARSED_CHARS],
                           "error": first_error})
    return statements


def _string_leaves(value: Any) -> list[str]:
    """Every string in `value`, depth first in order (not keys), within the caps; a
    string that is itself JSON (`{"input": "{\\"command\\": ...}"}`) is read into too."""
    leaves: list[str] = []
    stack = [value]
    while stack and len(leaves) < MAX_TEXTS:
        item = stack.pop()
        if isinstance(item, str):
            leaves.append(item[:MAX_TEXT_CHARS])
            if item.lstrip()[:1] in ("{", "[") and (inner := _decode(item)) is not None:
                stack.append(inner)
        elif isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return leaves


def _salvaged_strings(text: str) -> list[str]:
    """The string values still readable in broken or cut-off JSON (`{"cmd": "rm -rf /"`):
    a lenient agent may run what a strict parser refuses."""
    found: list[str] = []
    for m in _JSON_STRING.finditer(text):
        if len(found) == MAX_TEXTS - 1:
            break
        if _KEY_END.match(text, m.end()):
            continue
        try:
            value = orjson.loads(f'"{m.group(1)}"')
        except orjson.JSONDecodeError:
            continue
        found.append(value[:MAX_TEXT_CHARS])
    return found


def _decode(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return "" if arguments is None else jsonenc.dumps(arguments)


def _message(message: Any, position: int, errors: list[str]) -> dict[str, Any]:
    if not isinstance(message, dict):
        errors.append(f"messages[{position}] is a JSON {json_type(message)}, not an object")
        return {"role": None, "text": "", "tool_calls": []}
    return {
        "role": _str(message.get("role")),
        "text": _content_text(message.get("content")),
        "tool_calls": _message_tool_calls(message),
    }


def _message_tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant message's tool calls (`function` or `custom`), and its legacy
    `function_call`."""
    found = []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            spec = _call_spec(call)
            found.append(_tool_call(call.get("id"), spec.get("name"), _spec_arguments(spec)))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        found.append(_tool_call(None, legacy.get("name"), legacy.get("arguments")))
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
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def _tools(tools: Any, key: str, errors: list[str]) -> list[dict[str, Any]]:
    """The tools offered: `tools` entries (function tools by their function's name, others
    by their type) or legacy `functions` entries."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        errors.append(f"{key} is a JSON {json_type(tools)}, not an array")
        return []
    found = []
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

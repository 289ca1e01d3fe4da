"""Protocol interpreters: what a request (and an LLM's answer) means, as policy input.

Regexes over raw bytes are how gateways get bypassed (`DrOp/**/TABLE`, a DELETE in a
CTE), so each target protocol has an interpreter that fills one key of the policy
input — `sql`, `k8s`, `llm` or `mcp` — from the request as `codecs.message.request_view`
shows it. The exchange pipeline picks a target's interpreter once, at start; the modules beside
this one are pure functions that know nothing of Envoy or of the config.

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from extproc.codecs.jsonenc import json_type
from extproc.codecs.message import NotJsonText, is_json, media_type, parse_json
from extproc.config import K8s, Sql, Target
from extproc.config import Mcp as McpSettings

if TYPE_CHECKING:
    from extproc.codecs.message import Request
    from extproc.interpret.k8s import K8sReading, ObjectError
    from extproc.interpret.k8s_object import K8sObject
    from extproc.interpret.llm import ChatStream, LlmReading
    from extproc.interpret.mcp import McpReading, ToolPins
    from extproc.interpret.sql import SqlReading, Statement


class Interpreter(Protocol):
    key: str
    """The policy input key this interpreter fills."""

    def request(self, request: Request) -> Any:
        """The meaning of a request (`input.request`, body decoded), as a JSON value."""
        ...

    def attributes(self, meaning: Any, request: Request | None) -> dict[str, Any]:
        """The meaning in brief, as span attributes: tollgate's own (`tollgate.<key>.*`),
        evidence a trace search can filter on, and OpenTelemetry's semantic conventions
        for the protocol (`db.*`, `gen_ai.*`, `mcp.*`), which tracing backends show as
        they are. `request`: what the meaning was read from (None: not known)."""
        ...

    def refusal(self, body: dict[str, Any], status: int,
                meaning: Any) -> tuple[int, dict[str, Any]]:
        """tollgate's JSON refusal in the shape the protocol's clients show (a Kubernetes
        Status, an OpenAI error, a JSON-RPC error), its keys kept, and the status it goes
        with; `meaning`: what the request was read to mean, if it was."""
        ...

    def reads_answer(self, request: Request) -> bool:
        """Whether this request's answer has a reader of the protocol's own (a model's
        answer, read as it streams; an MCP server's messages), which the HTTP front
        picks by `key`; False: the front's own reading."""
        ...


class _Plain:
    """What an interpreter does where its protocol has nothing of its own: refusals in
    tollgate's JSON, the response handled by the HTTP front."""

    @staticmethod
    def refusal(body: dict[str, Any], status: int, _meaning: Any) -> tuple[int, dict[str, Any]]:
        return status, body

    @staticmethod
    def reads_answer(_request: Request) -> bool:
        return False


class SqlHttp(_Plain):
    """SQL carried over HTTP: a JSON field, a query parameter or the whole body.

    A request that may write (any method but GET, HEAD, OPTIONS) and whose body carries no
    SQL is `unread_write`: a server's JSON write API (Datasette's `POST /db/t/-/drop`,
    `/-/insert`, a row's `/-/delete`) changes data with no SQL text to judge. SQL in the
    query string does not make such a request read: Datasette ignores `?sql=` on a
    write, so `POST /db/t/1/-/delete?sql=select+1` would pass for a SELECT. Nor does SQL
    in the body of a write off the target's `sql.paths`, where the upstream runs none:
    Datasette drops a table sent `{"confirm": true, "sql": "select 1"}`. SQL is still
    read and judged everywhere, as reading more only refuses more.
    """

    key = "sql"

    def __init__(self, settings: Sql) -> None:
        from extproc.codecs.paths import path_matcher
        from extproc.interpret import sql
        from extproc.interpret.query_text import query_text

        sql.load(settings.dialect)
        self._analyze, self._query_text = sql.analyze, query_text
        self._settings = settings
        # Whether the upstream runs the SQL a request to a path carries (sql.paths).
        self._runs_sql: Callable[[str], bool] = (
            (lambda _path: True) if settings.paths is None else path_matcher(settings.paths))

    def request(self, request: Request) -> SqlReading:
        body_texts, problem = self._body_texts(request)
        reading = read_sql(self._query_texts(request) + body_texts, self._settings,
                           self._analyze, problem)
        reading["unread_write"] = (reading["error"] is None
                                   and request["method"] not in _READ_METHODS
                                   and not (body_texts and self._runs_sql(request["path"])))
        return reading

    def attributes(self, meaning: SqlReading, _request: Request | None) -> dict[str, Any]:
        return sql_attributes(meaning, self._query_text)

    def _query_texts(self, request: Request) -> list[str]:
        """The SQL texts of the query parameter the target names, in any case (`?SQL=`)."""
        name = self._settings.query_param
        return [] if name is None else _named(request["query"], name, flatten=True)

    def _body_texts(self, request: Request) -> tuple[list[str], str | None]:
        """Every SQL text the body carries where the target says SQL travels; and a problem
        when such a place holds something that is not text (it cannot be read, so it must
        not pass as "no SQL").

        Each place is read at least as widely as a server might read it, since a reading
        wider than the server's only refuses more: names in any case (`{"Sql": ...}`), a
        form body as query parameters, and a JSON object sent under another content type
        (many frameworks parse a body as JSON whatever its type, and Python's
        json.loads(bytes) reads UTF-16 and UTF-32 too). A body that cannot be read at all
        (binary, multipart) is refused.
        """
        settings, body = self._settings, request["body"]
        media = media_type(request["headers"].get("content-type", ""))
        if media.startswith("multipart/"):
            return [], f"a {media} body is not read for SQL; send JSON, a form or text"
        if body is None and media and not _readable_media(media):
            return [], f"a body of type {media} is not SQL text"
        texts: list[str] = []
        if settings.query_param is not None and media == _FORM and isinstance(body, str):
            form = parse_qs(body, keep_blank_values=True)
            texts += _named(form, settings.query_param, flatten=True)
        if settings.json_field is not None and body is not None:
            problem = self._json_texts(body, is_json(media), texts)
            if problem:
                return texts, problem
        if settings.raw_body and not is_json(media) and media != _FORM and isinstance(body, str):
            texts.append(body)
        return texts, None

    def _json_texts(self, body: Any, declared_json: bool, texts: list[str]) -> str | None:
        """Add the SQL of `json_field` to `texts`; a problem if it is not text."""
        field_name = self._settings.json_field
        if not declared_json and isinstance(body, str):
            body, problem = _undeclared_json(body)
            if problem is not None or not isinstance(body, dict):
                return problem
        if not isinstance(body, dict):
            return f"the body is a JSON {json_type(body)}, not an object with a {field_name} field"
        values: list[Any] = [body]
        for key in self._settings.json_path:
            values = [v for d in values if isinstance(d, dict) for v in _named(d, key)]
        for value in values:
            if isinstance(value, str):
                texts.append(value)
            elif value is not None:
                return f"the body's {field_name} field is a JSON {json_type(value)}, not a string"
        return None


def sql_attributes(meaning: SqlReading, query_text: QueryText) -> dict[str, Any]:
    """A SQL reading in brief, for the span: the kinds and tables of its statements; and
    as OpenTelemetry's database conventions have it (`db.*`), with its statements' text
    as `query_text` gives it (query_text.py's, which its interpreter loads)."""
    statements = meaning["statements"]
    found: dict[str, Any] = {
        "tollgate.sql.kinds": tuple(s["kind"] for s in statements),
        "tollgate.sql.tables": tuple(sorted({t for s in statements for t in s["tables"]})),
        **({"tollgate.sql.error": meaning["error"]} if meaning["error"] else {}),
        "db.system.name": _DB_SYSTEMS.get(meaning["dialect"], meaning["dialect"]),
    }
    top = [s for s in statements if not s["nested"]]
    if not top:
        return found
    if len(top) == 1:  # most exchanges: spared the batch's loops (this runs on every one)
        operation = _operation(top[0])
        tables = top[0]["tables"]
        words = [operation, *tables]
        if len(tables) == 1:
            found["db.collection.name"] = tables[0]
    else:
        operations = [_operation(s) for s in top]
        words = [w for s, op in zip(top, operations, strict=True) for w in (op, *s["tables"])]
        operation = "BATCH" + (f" {operations[0]}" if len(set(operations)) == 1 else "")
    found["db.operation.name"] = operation
    found["db.query.summary"] = _summary(words)
    text = query_text(top, meaning["dialect"])
    if text:
        found["db.query.text"] = text
    return found


# The statements' text for db.query.text, sanitized, in the dialect.
QueryText = Callable[[list["Statement"], str], str]
# db.system.name of each dialect with a well-known one; any other is the dialect's name,
# the DBMS's own in lower case, as the conventions ask of a DBMS they do not list.
_DB_SYSTEMS = {"postgres": "postgresql", "tsql": "microsoft.sql_server",
               "oracle": "oracle.db", "redshift": "aws.redshift", "spark2": "spark",
               "prql": "other_sql"}
# Statement kinds that name no one operation: the statement's first word does.
_UNNAMED_KINDS = frozenset({"other", "transaction"})
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/|#[^\n]*)*([A-Za-z_]{1,32})\b", re.S)
# The conventions' bound on a query summary.
_SUMMARY_CHARS = 255


def _operation(statement: Statement) -> str:
    """A statement's db.operation.name: its kind, upper-case (SELECT, DROP ...), or its
    first word where the kind names no one operation (BEGIN, COMMIT, FETCH ...)."""
    kind = statement["kind"]
    if kind in _UNNAMED_KINDS:
        first = _FIRST_WORD.match(statement["text"])
        if first:
            return first[1].upper()
    return kind.upper()


def _summary(words: list[str]) -> str:
    """db.query.summary: each statement's operation and tables, in order, cut between
    words at 255 characters (an operation is one short word: the first always fits)."""
    summary = " ".join(words)
    if len(summary) <= _SUMMARY_CHARS:
        return summary
    cut = summary[:_SUMMARY_CHARS + 1]
    return cut[:cut.rindex(" ")]


def read_sql(texts: list[str], settings: Sql, analyze: Callable[[str, str], Any],
             problem: str | None = None) -> SqlReading:
    """`input.sql` for these texts, within the settings' limits (a text or a count over
    them is an error, which the pack refuses); `problem`: an error found before."""
    statements: list[Statement] = []
    error = problem
    for text in texts:
        if len(text) > settings.max_bytes:
            error = error or (f"SQL text of {len(text)} characters exceeds this target's "
                              f"limit of {settings.max_bytes} (sql.max_bytes)")
            continue
        found = analyze(text, settings.dialect)
        statements += found["statements"]
        error = error or found["error"]
    if len(statements) > settings.max_statements:
        error = error or (f"{len(statements)} SQL statements exceed this target's limit "
                          f"of {settings.max_statements} (sql.max_statements)")
    return {
        "dialect": settings.dialect,
        "statements": [] if error else statements,
        "multiple": sum(not s["nested"] for s in statements) > 1,
        "error": error,
        "unread_write": False,
    }


# The request header a database front gives the server's version in (MySQL's handshake's).
SERVER_VERSION = "server-version"
# The request header the MySQL front says in how the server lexes a backslash in a string:
# "on" (an escape), "off" (itself: NO_BACKSLASH_ESCAPES); absent, it is not known.
BACKSLASH_ESCAPES = "backslash-escapes"
_ESCAPING = {"on": True, "off": False}


class WireSql(_Plain):
    """SQL from a database's own protocol, as its front puts it in the request's body:
    the text of a PostgreSQL Query or Parse, of a MySQL COM_QUERY or COM_STMT_PREPARE.
    Read in the target's dialect (`settings.dialect`): PostgreSQL's own parser for
    PostgreSQL, as the database will read it; sqlglot's MySQL dialect for MySQL."""

    key = "sql"

    def __init__(self, settings: Sql) -> None:
        from extproc.interpret import sql
        from extproc.interpret.query_text import query_text

        sql.load(settings.dialect)
        self._analyze, self._query_text = sql.analyze, query_text
        self._settings = settings

    def request(self, request: Request) -> SqlReading:
        body = request["body"]
        if not isinstance(body, str):  # the front always sends the text: fail closed
            return read_sql([], self._settings, self._analyze, "no SQL text to read")
        # The server's version and escaping, where the front knows them (its reading of
        # MySQL's executable comments and strings depends on them).
        version = request["headers"].get(SERVER_VERSION)
        backslashes = _ESCAPING.get(request["headers"].get(BACKSLASH_ESCAPES, ""))
        return read_sql([body], self._settings, functools.partial(
            self._analyze, server_version=version, backslashes=backslashes))

    def attributes(self, meaning: SqlReading, _request: Request | None) -> dict[str, Any]:
        return sql_attributes(meaning, self._query_text)


_FORM = "application/x-www-form-urlencoded"
# Methods that only read, as the pack's http.read_only has them. A request of any other
# method writes, and its body must carry the SQL it runs (input.sql.unread_write).
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _undeclared_json(body: str) -> tuple[Any, str | None]:
    """A text body not declared JSON, read as JSON where it may be an object: the value
    (None when it is no JSON), and a problem when it is JSON that cannot be read."""
    if "\x00" in body or body.startswith("\ufeff"):
        # UTF-16/32 (NUL bytes are valid UTF-8) or a byte order mark: decoded as
        # json.loads(bytes) would, which detects the encoding.
        try:
            return json.loads(body.encode("utf-8", "surrogatepass")), None
        except ValueError:
            return None, None
    if not body.lstrip().startswith("{"):
        return None, None  # text that is no JSON object: not where this SQL travels
    try:
        return parse_json(body), None
    except NotJsonText as exc:
        return None, f"the body is JSON that cannot be read: {exc}"
    except ValueError:
        return None, None


def _readable_media(media: str) -> bool:
    """Media whose body reaches the interpreter as text or JSON whenever it has one (an
    undecodable one is refused before): for these, no body means an empty one."""
    return is_json(media) or media == _FORM or media.startswith("text/")


def _named(mapping: dict[str, Any], name: str, flatten: bool = False) -> list[Any]:
    """The values under `name` in any case; `flatten`: each a list of values (a query)."""
    wanted = name.lower()
    found = [value for key, value in mapping.items() if key.lower() == wanted]
    return [v for value in found for v in value] if flatten else found


class Kubernetes(_Plain):
    """A Kubernetes API call as the API server reads it, with its namespace's labels and,
    for a write of a pod spec, what its body puts in the pod (`object`)."""

    key = "k8s"

    def __init__(self, settings: K8s) -> None:
        from extproc.interpret import k8s_object
        from extproc.interpret.k8s import STREAM_METHODS, k8s_request, within_stream

        self._read = k8s_request
        self._stream_methods, self._within_stream = STREAM_METHODS, within_stream
        self._objects = k8s_object
        self._labels = settings.namespace_labels

    def request(self, request: Request) -> K8sReading:
        method = request["method"]
        inside = method in self._stream_methods
        call = self._read("GET" if inside else method, request["path"], request["query"],
                          request["headers"])
        if inside:  # a line or a file inside a stream the front relays
            call = self._within_stream(call, method, request["body"])
        written: K8sObject | ObjectError | None = None
        verb, resource = call["verb"], call["resource"]
        if verb and resource and self._objects.reads_body(verb, resource, call["subresource"]):
            # What a workload runs and mounts is in the body (k8s_object.py).
            try:
                written = self._objects.read_object(
                    resource, verb, request["headers"].get("content-type", ""), request["body"])
            except self._objects.Unreadable as exc:
                # The call itself was read: only what it puts in the pod is unknown, which
                # matters to the rules about agents (k8s.unread_workload), not to everyone.
                written = {"error": str(exc)}
        return {**call, "namespace_labels": self._labels.get(call["namespace"] or "", {}),
                "object": written}

    @staticmethod
    def refusal(body: dict[str, Any], status: int, _meaning: Any) -> tuple[int, dict[str, Any]]:
        """A Kubernetes Status, whose message kubectl prints (`Error from server
        (Forbidden): ...`); tollgate's own keys stay beside it."""
        why = "; ".join(body.get("reasons") or [body.get("message") or body["error"]])
        return status, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"tollgate refused: {why} (trace {body['trace_id']})",
            "reason": _STATUS_REASONS.get(status, "Forbidden"), "code": status,
            **{k: v for k, v in body.items() if k != "message"},  # it is in Status's own
        }

    def attributes(self, meaning: K8sReading, _request: Request | None) -> dict[str, Any]:
        found: dict[str, Any] = {f"tollgate.k8s.{key}": meaning[key]
                 for key in ("verb", "resource", "subresource", "namespace", "name")
                 if meaning[key] is not None}
        if meaning["exec"] is not None:
            found["tollgate.k8s.command"] = tuple(meaning["exec"]["command"])
        return found


# The `reason` a Kubernetes Status gives for a status code (metav1.StatusReason).
_STATUS_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                   413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
                   500: "InternalError", 502: "InternalError"}


class Llm:
    """An OpenAI-compatible model call (chat completions, the Responses API): prompts and
    tools offered, and (from the answer, `answer` or `streamed`) the tool calls the model
    asks the agent to run."""

    key = "llm"

    def __init__(self) -> None:
        from extproc.interpret import llm

        self._llm = llm

    def request(self, request: Request) -> LlmReading | None:
        api = model_api(request)
        if api is None:
            return None  # /v1/models, embeddings...: no prompt, no tool call
        if api == "responses":
            return self._llm.responses_request(request["body"])
        return self._llm.chat_request(request["body"])

    @staticmethod
    def refusal(body: dict[str, Any], status: int, _meaning: Any) -> tuple[int, dict[str, Any]]:
        """OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`), which
        OpenAI-compatible clients raise with its message; tollgate's keys go inside."""
        why = "; ".join(body.get("reasons") or [body.get("message") or body["error"]])
        return status, {
            "error": {
                "message": f"tollgate refused: {why} (trace {body['trace_id']})",
                "type": body["error"], "param": None, "code": body["error"],
                **{k: v for k, v in body.items() if k not in ("error", "message")},
            },
            "trace_id": body["trace_id"],
        }

    @staticmethod
    def reads_answer(request: Request) -> bool:
        """A model's answer may hold tool calls: it is read as it streams."""
        return model_api(request) is not None

    def attributes(self, meaning: LlmReading | None,
                   request: Request | None) -> dict[str, Any]:
        """tollgate's summary, and OpenTelemetry's GenAI conventions (`gen_ai.*`) for the
        call: the provider is the API's (an OpenAI-compatible one, whoever serves it),
        the operation `chat` for both APIs read. A tool call the answer asks for is named
        by gen_ai.tool.* when it is the only one (tollgate.llm.tool_calls lists them all)."""
        if meaning is None:
            return _unread_model_call(request)
        found: dict[str, Any] = {
            "tollgate.llm.model": str(meaning["model"] or ""),
            "tollgate.llm.tool_calls": tuple(str(c["name"]) for c in meaning["tool_calls"]),
            "gen_ai.provider.name": GEN_AI_PROVIDER, "gen_ai.operation.name": "chat",
        }
        if meaning["model"]:
            found["gen_ai.request.model"] = meaning["model"]
        if meaning["finish_reason"]:
            found["gen_ai.response.finish_reasons"] = (meaning["finish_reason"],)
        if len(meaning["tool_calls"]) == 1:
            (call,) = meaning["tool_calls"]
            if call["name"]:
                found["gen_ai.tool.name"] = call["name"]
            if call["id"]:
                found["gen_ai.tool.call.id"] = call["id"]
        return found

    def answer(self, meaning: LlmReading | None, content: bytes
               ) -> tuple[LlmReading | None, Any]:
        """The request's meaning with what a whole answer (its bytes, decoded from its
        Content-Encoding) returned, read whatever its declared type (`llm.read_answer`);
        and the answer as JSON (None when it is none)."""
        answer, body = self._llm.read_answer(content)
        if meaning is None:
            return None, body
        return {**meaning, "tool_calls": answer["tool_calls"],
                "finish_reason": answer["finish_reason"],
                "error": meaning["error"] or answer["error"]}, body

    def stream(self) -> ChatStream:
        return self._llm.ChatStream()

    @staticmethod
    def streamed(meaning: LlmReading | None, stream: ChatStream) -> LlmReading | None:
        """The request's meaning with what a streamed answer assembled to."""
        if meaning is None:
            return None
        return {**meaning, "tool_calls": stream.tool_calls,
                "finish_reason": stream.finish_reason,
                "error": meaning["error"] or stream.error}


def model_api(request: Request) -> str | None:
    """Which model API a request calls, whose answer may hold tool calls: `chat.completions`
    (`POST .../chat/completions`), `responses` (`POST .../responses`), else None."""
    if request["method"] != "POST":
        return None
    path = request["path"]
    if path.endswith("/chat/completions"):
        return "chat.completions"
    return "responses" if path.endswith("/responses") else None


# The GenAI conventions' provider for an OpenAI-compatible API, whoever serves it (their
# note: "based on the instrumentation's best knowledge").
GEN_AI_PROVIDER = "openai"
# The model calls tollgate does not read, by the path's end, as the GenAI conventions
# name their operation.
_UNREAD_OPERATIONS = (("/embeddings", "embeddings"), ("/completions", "text_completion"))


def _unread_model_call(request: Request | None) -> dict[str, Any]:
    """A model call tollgate does not read (embeddings, legacy completions) as the GenAI
    conventions name it, with the model its body asks for; nothing for other calls
    (`GET /v1/models` ...)."""
    if request is None or request["method"] != "POST":
        return {}
    operation = next((op for end, op in _UNREAD_OPERATIONS if request["path"].endswith(end)),
                     None)
    if operation is None:
        return {}
    found: dict[str, Any] = {"gen_ai.provider.name": GEN_AI_PROVIDER,
                             "gen_ai.operation.name": operation}
    body = request["body"]
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and model:
        found["gen_ai.request.model"] = model
    return found


def answer_attributes(payload: Any, found: dict[str, Any]) -> None:
    """What a model's answer says of itself, into `found` (the GenAI conventions'
    gen_ai.response.* and gen_ai.usage.*): from a whole answer, or from each event of a
    stream (a chat chunk, a Responses API event, whose `response` carries them). Only
    top-level keys are looked at: this runs on every event."""
    if type(payload) is not dict:
        return
    response = payload.get("response")
    if type(response) is dict:
        payload = response
    elif "usage" not in payload and "gen_ai.response.model" in found:
        return  # a chunk like every other: its model and id are known already
    if "gen_ai.response.model" not in found:
        model, answer_id = payload.get("model"), payload.get("id")
        if isinstance(model, str) and model:
            found["gen_ai.response.model"] = model[:_ANSWER_CHARS]
        if isinstance(answer_id, str) and answer_id:
            found["gen_ai.response.id"] = answer_id[:_ANSWER_CHARS]
    usage = payload.get("usage")
    if type(usage) is dict:
        for key, names in _USAGE:
            count = next((usage[n] for n in names if type(usage.get(n)) is int), None)
            if count is not None:
                found[key] = count


# The longest model name or answer id kept: the upstream's words, not tollgate's.
_ANSWER_CHARS = 256
# Token counts, as chat completions and the Responses API name them.
_USAGE = (("gen_ai.usage.input_tokens", ("prompt_tokens", "input_tokens")),
          ("gen_ai.usage.output_tokens", ("completion_tokens", "output_tokens")))


class Mcp(_Plain):
    """A Model Context Protocol message (JSON-RPC over streamable HTTP or HTTP+SSE): a
    tool call read as a model's is, with what the server declared about the tool and
    where its definition stands against the pinned one (`pins`)."""

    key = "mcp"

    def __init__(self, settings: McpSettings, target: str, pins: ToolPins | None) -> None:
        from extproc.interpret import mcp

        self._mcp = mcp
        self._settings, self._target, self._pins = settings, target, pins

    def request(self, request: Request) -> McpReading:
        return self._mcp.read_request(request["method"], request["query"],
                                      request["headers"], request["body"])

    async def complete(self, meaning: McpReading) -> McpReading:
        """A tools/call with what the server declared about its tool (none known without
        pins: `unknown`), its arguments read as the tool's kind says."""
        if meaning["tool"] is None:
            return meaning
        declared, pin = (None, self._mcp.UNKNOWN) if self._pins is None else (
            await self._pins.declared(self._target, meaning["tool"]["name"]))
        return self._mcp.with_tool(meaning, declared, pin, self._settings.shell_tools,
                                   self._settings.sql_tools)

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
        answer: the HTTP status stays."""
        from extproc.interpret.mcp import rpc_error

        rpc_id = meaning["id"] if meaning is not None and meaning["kind"] == "request" else None
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
        prompt = meaning["prompt"]
        if prompt is not None and isinstance(prompt["name"], str):
            found["gen_ai.prompt.name"] = prompt["name"][:128]
        if meaning["error"] is not None:
            found["tollgate.mcp.error"] = meaning["error"]
        version = request["headers"].get("mcp-protocol-version") if request else None
        if version:
            found["mcp.protocol.version"] = version[:32]
        return found


def interpreter_for(target: Target, pins: ToolPins | None = None) -> Interpreter | None:
    """The target's interpreter, built once per process (parsers and tables load here)."""
    if target.protocol == "sql-http" and target.sql is not None:
        return SqlHttp(target.sql)
    if target.protocol == "k8s" and target.k8s is not None:
        return Kubernetes(target.k8s)
    if target.protocol == "llm":
        return Llm()
    if target.protocol == "mcp" and target.mcp is not None:
        return Mcp(target.mcp, target.name, pins)
    if target.protocol == "postgres":
        return WireSql(Sql())
    if target.protocol == "mysql":
        return WireSql(Sql(dialect="mysql"))
    if target.protocol == "ssh":
        from extproc.interpret.ssh import Ssh

        return Ssh(target)
    return None


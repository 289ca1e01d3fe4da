"""The decision corpus: policy inputs and the decisions the default pack owes them.

Each `*.json` file here is a list of cases (format in README.md). A case's input is
built the way tollgate's servicer builds it — the HTTP request through
`extproc.codecs.message`, its meaning through the target's protocol interpreter
(`extproc.interpret.interpreter_for(target)`: `input.sql`, `input.k8s`, `input.llm`), then
`extproc.policy.input.InputEncoder` for the JSON text — so the corpus exercises the real
reading and encoding path, not a hand-written imitation of it. An MCP target's reading is
completed as the servicer completes it, with what the case says its server declared
(`mcp_tools`, README.md).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from extproc.codecs.message import (
    decode_request_body,
    decode_response_body,
    decoded_content,
    policy_headers,
    request_view,
)
from extproc.config import (
    K8s,
    Match,
    Mcp,
    MysqlTarget,
    Policy,
    PostgresTarget,
    Sql,
    SshTarget,
    Target,
)
from extproc.identity import ANONYMOUS
from extproc.interpret import Llm, interpreter_for, mcp_content
from extproc.interpret import mcp as mcp_reading
from extproc.masking.body import is_event_stream
from extproc.policy.input import InputEncoder

HERE = Path(__file__).resolve().parent
_FORMS = ("http", "request", "raw_input")

# The reason each rule of the pack gives, for the `expected` shorthands: "{}" is filled
# with each word after the rule name ("deny sql.destructive DROP TRUNCATE"); a reason
# without "{}" is the rule's only one ("deny sql.do_block"). Rules whose reasons quote
# the request (a parser message, a namespace, a tool call) are written out instead:
# "deny sql.unparseable: unparseable SQL: <message>".
REASONS = {
    "sql.destructive": "destructive SQL: {}",
    "sql.copy_program": "COPY ... PROGRAM runs a command on the database server",
    "sql.do_block": "DO blocks run code that cannot be inspected",
    "sql.server_access": "{} reaches the database server's files, programs or processes",
    "sql.privilege": "{} changes roles or privileges",
    "sql.configuration": "{} changes the server's configuration",
    "sql.dynamic": "{} runs code held in a string",
    "sql.unrecognised": "unrecognised SQL statement",
    "sql.read_only": "{} on a read-only target",
    "sql.unbounded_write": "{} without WHERE",
    "http.read_only": "{} on a read-only target",
    "k8s.secrets": "{} secrets",
    "k8s.namespace_delete": "namespace deletion",
    "sql.unread": "the request's SQL was not read (input.sql missing)",
    "k8s.unread": "the Kubernetes request was not read (input.k8s missing)",
    "llm.unread": "the model's tool calls were not read (input.llm.tool_calls)",
    "mcp.privileged_tool": "tool {} is declared destructive by its server (destructiveHint)",
    "mcp.tool_changed": "tool {} changed its definition since it was pinned (a rug pull?); "
                        "it is refused until someone approves the new definition",
    "mcp.tool_new": "tool {} was first listed after this server's tools were pinned; it is "
                    "refused until someone approves it",
    "mcp.tool_unknown": "tool {} is unknown: the gateway never saw the server declare it "
                        "(list the server's tools first)",
    "mcp.binary_content": "binary content {}: the target's label mcp-binary-content does "
                          "not allow it",
    "mcp.server_request": "server request {}: the target's label mcp-server-requests does "
                          "not list it",
}
# Who approves a hold of each holding rule, and how long it waits (policies/sql.rego,
# policies/mcp.rego, policies/ssh.rego).
HOLDS = {
    "sql.unbounded_write": (["group:dba"], 300),
    "mcp.opaque_tool_call": (["group:dba"], 300),
    "mcp.privileged_tool": (["group:dba"], 300),
    "ssh.privileged_command": (["group:ops"], 300),
    "ssh.opaque_command": (["group:ops"], 300),
    "ssh.state_file_write": (["group:ops"], 300),
    "ssh.data_destroyed": (["group:ops"], 300),
    "k8s.opaque_exec": (["group:dba"], 300),
    "k8s.state_file_write": (["group:dba"], 300),
    "ssh.ansible_privileged_module": (["group:ops"], 300),
    "ssh.ansible_unjudged_path": (["group:ops"], 300),
    "k8s.production_destroy": (["group:cluster-admins"], 300),
    "k8s.privilege_change": (["group:cluster-admins"], 300),
    "k8s.privileged_pod": (["group:cluster-admins"], 300),
    "flow.after_untrusted": (["group:security"], 600),
    "flow.carried": (["group:security"], 600),
}
# The holds the pack's grants.rego opens a window for once approved, and for how many
# minutes (a case with a `grant_minutes_by_rule` of its own writes its decision out).
GRANTS = {"ssh.privileged_command": 15}
# The pack's masks (policies/tollgate.rego): everything for callers outside the
# `privileged` group (in a model's tool-call arguments, credentials, cards, SSNs and
# IBANs), nothing on a target labelled `masking: off` or a k8s session.
MASK_ALL = {
    "detectors": ["all"],
    "actions": ["aws_access_key_id", "aws_secret_key", "github_token", "gitlab_token",
                "slack_token", "stripe_key", "openai_key", "jwt", "private_key",
                "connection_password", "vendor_key", "generic_secret", "undecoded",
                "credit_card", "us_ssn", "iban"],
    "strategy": "redact",
}


# The pack's tables a case may replace, as a user edits them: the case's key, the file
# that holds the table, and the table's rule.
TABLES = {"egress_lists": ("egress_lists.rego", "egress"),
          "approvals_needed_by_rule": ("approvals.rego", "approvals_needed_by_rule"),
          "grant_minutes_by_rule": ("grants.rego", "grant_minutes_by_rule")}

# input.postgres of a case on a postgres target that does not give its own: psql's
# simple Query, outside a transaction, over TLS.
DEFAULT_SESSION = {
    "database": "shop", "role": "analyst", "application_name": "psql",
    "session_id": "pg-corpus", "message": "query", "statement_name": None,
    "transaction_status": "idle", "tls": True,
}
# input.mysql of a case on a mysql target that does not give its own: a COM_QUERY over TLS.
DEFAULT_MYSQL_SESSION = {
    "database": "shop", "user": "analyst", "session_id": "my-corpus", "command": "query",
    "tls": True,
}
SESSIONS = {"postgres": DEFAULT_SESSION, "mysql": DEFAULT_MYSQL_SESSION}


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    spec: dict[str, Any]  # the case as written, generators expanded
    expected: Any  # a decision object, or "policy_error"
    known_gap: str | None
    # Where an engine other than the RVM answers otherwise, and why:
    # {"opa": outcome, "interpreter": outcome, "why": "..."} (each engine optional).
    divergence: dict[str, Any] | None

    @cached_property
    def input_json(self) -> str:
        return policy_input(self.spec)

    @property
    def tables(self) -> dict[str, Any]:
        """The pack's tables the case is decided with where they are not the default
        pack's (`egress_lists`, `approvals_needed_by_rule`, `grant_minutes_by_rule`: TABLES)."""
        return {key: self.spec[key] for key in TABLES if key in self.spec}

    def expected_on(self, engine: str) -> Any:
        """The outcome owed on `engine` ("rvm", "opa" or "interpreter")."""
        if engine != "rvm" and self.divergence and engine in self.divergence:
            return self.divergence[engine]
        return self.expected


def load(directory: Path = HERE) -> list[Case]:
    """Every case of every corpus file, checked for shape and unique names (read once per
    process: three test modules make cases of them)."""
    return list(_load(directory))


@functools.cache
def _load(directory: Path) -> tuple[Case, ...]:
    cases: list[Case] = []
    for path in sorted(directory.glob("*.json")):
        for spec in json.loads(path.read_text(encoding="utf-8")):
            spec = expand(spec)
            forms = [f for f in _FORMS if f in spec]
            if len(forms) != 1:
                raise ValueError(f"{path.name}: {spec.get('name')}: needs one of {_FORMS}")
            divergence = spec.get("divergence")
            if divergence is not None:
                divergence = {
                    k: outcome_of(v) if k in ("opa", "interpreter") else v
                    for k, v in divergence.items()
                }
            expected = outcome_of(spec["expected"])
            if spec.get("moderated") is True and isinstance(expected, dict):
                expected = {**expected, "moderated": True}
            cases.append(Case(
                spec["name"], path.name, spec, expected,
                spec.get("known_gap"), divergence,
            ))
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"case names used twice: {sorted(duplicates)}")
    return tuple(cases)


def outcome_of(expected: Any) -> Any:
    """A decision object, from the shorthands too (README.md, "A case")."""
    if expected == "policy_error" or isinstance(expected, dict):
        return expected
    if expected == "allow":
        return {"action": "allow", "reasons": [], "rules": [], "mask": MASK_ALL}
    if expected == "allow unmasked":
        return {"action": "allow", "reasons": [], "rules": [], "mask": {}}
    if not isinstance(expected, str):
        raise ValueError(f"unknown expected outcome {expected!r}")
    action, _, clauses = expected.partition(" ")
    if action not in ("deny", "hold") or not clauses:
        raise ValueError(f"unknown expected outcome {expected!r}")
    reasons: list[str] = []
    rules: set[str] = set()
    for clause in clauses.split("; "):
        rule, reasons_of = _clause(clause, expected)
        rules.add(rule)
        reasons += reasons_of
    decision: dict[str, Any] = {"action": action, "reasons": sorted(reasons),
                                "rules": sorted(rules)}
    if action == "hold":
        unknown = rules - HOLDS.keys()
        if unknown:
            raise ValueError(f"{expected!r}: no hold shorthand for {sorted(unknown)}")
        decision["approvers"] = sorted({a for r in rules for a in HOLDS[r][0]})
        decision["hold_seconds"] = min(HOLDS[r][1] for r in rules)
        decision["mask"] = MASK_ALL
        if rules <= GRANTS.keys():  # a window, as the pack's grants.rego gives one
            decision["grant"] = "window"
            decision["grant_minutes"] = min(GRANTS[r] for r in rules)
    return decision


def _clause(clause: str, expected: str) -> tuple[str, list[str]]:
    """(rule, its reasons) of one clause: `RULE: REASON` or `RULE WORD...`."""
    head, colon, literal = clause.partition(": ")
    if colon and " " not in head:
        return head, [literal]
    rule, *words = clause.split(" ")
    template = REASONS.get(rule)
    if template is None:
        raise ValueError(f"{expected!r}: no reason shorthand for {rule!r}: write `{rule}: ...`")
    if "{}" not in template:
        if words:
            raise ValueError(f"{expected!r}: {rule} takes no words")
        return rule, [template]
    if not words:
        raise ValueError(f"{expected!r}: {rule} needs what its reason names")
    return rule, [template.format(w) for w in words]


def expand(value: Any) -> Any:
    """Generators for what is too big to write: $repeat, $concat, $nest, $nest_list."""
    if isinstance(value, list):
        return [expand(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return str(expand(value["$repeat"])) * int(value["times"])
    if "$concat" in value:
        return "".join(expand(v) for v in value["$concat"])
    if "$nest" in value:
        nested = expand(value["leaf"])
        for _ in range(int(value["$nest"])):
            nested = {value.get("key", "a"): nested}
        return nested
    if "$nest_list" in value:
        nested = expand(value["leaf"])
        for _ in range(int(value["$nest_list"])):
            nested = [nested]
        return nested
    return {k: expand(v) for k, v in value.items()}


def target_of(spec: dict[str, Any]) -> Target:
    """The case's target: `orders-sql`, protocol sql-http (PostgreSQL), unless it says."""
    overrides = spec.get("target", {})
    protocol = overrides.get("protocol", "sql-http")
    return Target(
        name=overrides.get("name", "orders-sql"),
        match=Match(database="shop") if protocol in SESSIONS
        else Match(login=overrides.get("name", "web-1")) if protocol == "ssh"
        else Match(route="orders"),
        protocol=protocol,
        environment=overrides.get("environment", "prod"),
        labels=overrides.get("labels", {}),
        sql=Sql(**overrides["sql"]) if "sql" in overrides else None,
        k8s=K8s(**overrides["k8s"]) if "k8s" in overrides else None,
        mcp=Mcp(**{k: tuple(v) for k, v in overrides["mcp"].items()})
        if "mcp" in overrides else None,
        # The database a postgres or mysql target reaches: no engine reads it.
        postgres=PostgresTarget(upstream="127.0.0.1:5432", user="tollgate")
        if protocol == "postgres" else None,
        mysql=MysqlTarget(upstream="127.0.0.1:3306", user="tollgate")
        if protocol == "mysql" else None,
        # The host an ssh target reaches (input.ssh names it; no engine connects).
        ssh=SshTarget(upstream="10.0.0.5:22", user="deploy", key_file=Path("gateway_ed25519"),
                      host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinnedHostKey")
        if protocol == "ssh" else None,
    )


def policy_input(spec: dict[str, Any]) -> str:
    """The JSON text tollgate would hand the policy engine for this case."""
    if "raw_input" in spec:
        return json.dumps(spec["raw_input"], ensure_ascii=False)
    target = target_of(spec)
    pins = _Pins(spec)
    interpreter = (interpreter_for(target, pins, _Lister(pins, spec))
                   if target.protocol == "mcp" else interpreter_for(target))
    phase = spec.get("phase", "request")
    stream = content = None
    if "http" in spec:
        request = _request_from_http(spec["http"])
        response = None
        if "response_http" in spec:
            response, stream, content = _response_from_http(spec["response_http"])
    else:
        request, response = spec["request"], spec.get("response")
    if interpreter is None:
        meaning = None
    else:
        meaning = interpreter.request(request)
        if phase == "response" and isinstance(interpreter, Llm):
            # The servicer reads a model's answer into input.llm before deciding on it.
            if stream is not None:
                meaning = Llm.streamed(meaning, stream)
            elif content is not None:  # read whatever its declared type, as the servicer does
                meaning, body = interpreter.answer(meaning, content)
                if body is not None:
                    response["body"] = body
        if target.protocol == "mcp":
            meaning = _mcp_meaning(interpreter, meaning, spec)
    identity = spec.get("identity", ANONYMOUS)
    key = interpreter.key if interpreter is not None else None
    # A database front's session (input.postgres, input.mysql), as the front builds it.
    protocol = target.protocol
    context = spec.get(protocol, SESSIONS[protocol]) if protocol in SESSIONS else None
    flow = spec.get("flow")  # input.flow as activity/flow.py reads it
    return InputEncoder(target, key).encode(
        phase, identity, request, response, meaning, context=context,
        flow=None if flow is None else json.dumps(flow).encode())


class _Pins:
    """The tool definitions an MCP case's server declared (`mcp_tools`, as a tools/list
    lists them), each pinned as declared unless named in `mcp_changed`, `mcp_new` or
    `mcp_renamed` (a name: the name its definition had, or null)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._declared = dict(filter(None, map(mcp_reading.declared_of,
                                               spec.get("mcp_tools", []))))
        self._changed = set(spec.get("mcp_changed", []))
        self._new = set(spec.get("mcp_new", []))
        self._renamed: dict[str, str | None] = spec.get("mcp_renamed", {})

    def pinned(self, tools: list[Any]) -> None:
        """Tools a listing declared, pinned as declared from now on."""
        self._declared.update(filter(None, map(mcp_reading.declared_of, tools)))

    def pin(self, name: str) -> tuple[Any, Any]:
        declared = self._declared.get(name)
        if declared is None:
            return None, mcp_reading.UNKNOWN
        now = mcp_reading.fingerprint(name, declared)
        if name in self._new or name in self._renamed:
            return declared, {"status": "renamed" if name in self._renamed else "new",
                              "fingerprint": now, "pinned": None,
                              "renamed_from": self._renamed.get(name)}
        pinned = "0" * 64 if name in self._changed else now
        status = "changed" if name in self._changed else "pinned"
        return declared, {"status": status, "fingerprint": now, "pinned": pinned,
                          "renamed_from": None}

    async def declared(self, _target: str, name: str) -> tuple[Any, Any]:
        return self.pin(name)

    async def listed(self, _target: str, _approvers: tuple[str, ...],
                     tools: list[tuple[str, Any]], _asker: Any,
                     _continued: bool = False) -> dict[str, Any]:
        return {name: self.pin(name)[1] for name, _ in tools}


def _mcp_meaning(interpreter: Any, meaning: Any, spec: dict[str, Any]) -> Any:
    """input.mcp as the servicer builds it: the request's message completed with what the
    server declared; or (`mcp_probe`: a tool name) the probe of a tool a tools/list shows;
    or (`mcp_server_message`) a message the server sends the client, with its binary
    content (`content`) as the answer's reader lists it."""
    if "mcp_server_message" in spec:
        message = spec["mcp_server_message"]
        read = mcp_reading.message_reading(message, meaning["transport"], "server",
                                           meaning["session"])
        items = mcp_content.binary_items(message)
        return {**read, "content": [i.described() for i in items]} if items else read
    if "mcp_probe" in spec:
        name = spec["mcp_probe"]
        declared, pin = _Pins(spec).pin(name)
        return interpreter.probe(meaning, name, declared, pin)
    if "mcp_self_listed" in spec or "mcp_self_listing_error" in spec:
        # The call's tool has no pin: the gateway lists the server's tools itself.
        return _awaited(interpreter.complete(meaning, {}, None))
    return _awaited(interpreter.complete(meaning))


class _Lister:
    """The gateway's own listing of an MCP case's server: `mcp_self_listed`, the tools it
    lists (pinned as declared from then on), or `mcp_self_listing_error`, why it fails."""

    def __init__(self, pins: _Pins, spec: dict[str, Any]) -> None:
        self._pins, self._spec = pins, spec

    async def listed(self, _target: str, _call: Any, _headers: dict[str, str],
                     _asker: Any, _subject: Any = None) -> int:
        if "mcp_self_listing_error" in self._spec:
            raise mcp_reading.ListingFailed(self._spec["mcp_self_listing_error"])
        tools = self._spec.get("mcp_self_listed", [])
        self._pins.pinned(tools)
        return len(tools)


def _awaited(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """A coroutine that awaits nothing pending (the case's pins answer at once), run to
    its end without an event loop (a caller may be inside one)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the MCP reading awaited something the corpus cannot give")


def _sensitive() -> tuple[str, ...]:
    return Policy().sensitive_headers


def _body_bytes(http: dict[str, Any], headers: dict[str, str]) -> bytes:
    if "body_json" in http:
        headers.setdefault("content-type", "application/json")
        return json.dumps(http["body_json"], ensure_ascii=False).encode()
    if "body_base64" in http:
        return base64.b64decode(http["body_base64"])
    return str(http.get("body", "")).encode()


def _request_from_http(http: dict[str, Any]) -> dict[str, Any]:
    """input.request as the servicer builds it from Envoy's headers and body."""
    headers = {k.lower(): v for k, v in http.get("headers", {}).items()}
    raw = _body_bytes(http, headers)
    envoy_headers = {
        ":method": http.get("method", "GET"), ":path": http.get("path", "/"),
        ":scheme": "http", ":authority": "gateway.test", **headers,
    }
    request = request_view(envoy_headers, _sensitive())
    if raw:
        request["body"] = decode_request_body(envoy_headers, raw)
    return request


def _response_from_http(http: dict[str, Any]) -> tuple[dict[str, Any], Any, bytes | None]:
    """input.response as the servicer builds it; for an event stream, the stream an LLM
    target reads it with (its body then stays null: it flows, masked, unbuffered); else
    the body decoded from its Content-Encoding, which an LLM target reads itself."""
    headers = {k.lower(): v for k, v in http.get("headers", {}).items()}
    raw = _body_bytes(http, headers)
    status = int(http.get("status", 200))
    envoy_headers = {":status": str(status), **headers}
    response = {
        "status": status,
        "headers": policy_headers(envoy_headers, _sensitive()),
        "body": None,
    }
    if is_event_stream(envoy_headers):
        stream = Llm().stream()
        stream.feed(raw)
        stream.finish()
        return response, stream, None
    content = decoded_content(envoy_headers, raw, 16 * 1024 * 1024)
    if raw:
        response["body"] = decode_response_body(envoy_headers, content)
    return response, None, content


def with_tables(modules: list[tuple[str, str]],
                tables: dict[str, Any]) -> list[tuple[str, str]]:
    """The pack's modules, each table of `tables` (a case's `tables`) replacing its file
    as a user edits it."""
    replaced = modules
    for key, value in tables.items():
        file, rule = TABLES[key]
        source = f"package tollgate\nimport rego.v1\n{rule} := {json.dumps(value)}\n"
        edited = [(name, source if Path(name).name == file else text)
                  for name, text in replaced]
        if edited == replaced:
            raise ValueError(f"the pack has no {file}")
        replaced = edited
    return replaced

"""A stand-in for the OPA server binary, which cannot be installed on this machine.

Evaluation is the real OPA engine (Go, OPA 1.x), in process through `opa_bindings`
(PyPI `opa-golib-python-bindings`): parsing, compiling and evaluating Rego are OPA's
own. Only the HTTP layer is ours, written to OPA's REST API as OPA 1.x's
`v1/server/server.go` implements it, so a client such as tollgate's `opa` backend can
be tested over a real socket:

    GET    /health                 200 {}
    GET    /v1/policies            {"result": [{"id", "raw", "ast"}, ...]}
    GET    /v1/policies/{id}       {"result": {"id", "raw", "ast"}}; 404 resource_not_found
    PUT    /v1/policies/{id}       body = Rego source; 200 {}; 400 invalid_parameter with
                                   OPA's `errors` ([{code, message, location{file,row,col}}])
    DELETE /v1/policies/{id}       200 {}; 404 when absent; 400 invalid_operation if the rest
                                   no longer compiles
    POST   /v1/data/{path}         body {"input": ...} -> {"result": value}, or {} when
                                   undefined (no "result" key); 500 internal_error on an
                                   evaluation error; 400 invalid_parameter on malformed JSON
    GET    /v1/data/{path}         the same, input from `?input=<json>`

As OPA does: a path ending in "/" is redirected (301) to the path without it, HEAD is 405,
a known resource with another method is 405 with an empty body, an unknown path is Go's
plain-text 404, and answers are compact JSON with `<`, `>`, `&` escaped. Endpoints OPA
has that tollgate does not use (/v1/query, /v1/compile, PUT /v1/data, ...) answer 501.

Where the stand-in is not OPA (what opa_bindings does not expose):
- built-in errors are always strict: where an OPA server (default
  `strict-builtin-errors=false`) makes an expression whose built-in fails undefined,
  the stand-in answers 500 with the eval_builtin_error/eval_type_error;
- a compile error's column is OPA's caret column for parse errors; OPA's message does
  not carry the column of other errors, so there it is the row's first non-blank column;
- `ast` in policy answers is the parsed module (`rego.parse_module`), where OPA shows the
  compiled one (same package path and rule names; rewritten bodies differ);
- decimals in an input with more precision than a float64 are rounded, and those beyond
  its range refused (Python's json reads them for the bindings), where OPA keeps every
  number exact; integers of any size pass exactly.

Tests drive faults (`fail`, `delay`, `drop`), "OPA down" (`stop`, `start`) and "OPA
restarted" (`restart`: policies PUT over the API are gone, the startup directory's stay).
Also a process, for benchmarks: `python -m tests.standins.opa_standin --port P --policies DIR`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import opa_bindings

_COMPILE_MESSAGE = "error(s) occurred while compiling module(s)"
_EVAL_MESSAGE = "error(s) occurred while evaluating query"
_FAULT_BODY = {"code": "internal_error", "message": "fault injected by the OPA stand-in"}
# What no OPA API route matches: Go's http.NotFound.
_NOT_FOUND = b"404 page not found\n"


class PolicyRejected(Exception):
    """OPA refused a policy change; `status` and `body` are what the REST API answers."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status, self.body = status, body


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    body: bytes
    status: int | None  # what the stand-in answered; None when it dropped the connection
    client_port: int  # the client's side of the connection: equal ports, one connection


@dataclass
class _Fault:
    kind: str  # "fail" | "delay" | "drop"
    remaining: int | None  # None: until cleared
    path_prefix: str
    status: int = 503
    body: dict[str, Any] | None = None
    seconds: float = 0.0


def rego_sources(directory: Path) -> dict[str, str]:
    """Policy id -> source for every .rego file below `directory`, tests and hidden excepted.

    The id is the path relative to the directory (its file name for a top-level file).
    """
    found: dict[str, str] = {}
    for path in sorted(directory.rglob("*.rego")):
        relative = path.relative_to(directory)
        if path.name.endswith("_test.rego") or any(p.startswith(".") for p in relative.parts):
            continue
        found[relative.as_posix()] = path.read_text(encoding="utf-8")
    return found


class _Policies:
    """The policy store and the compiled engine that answers from it.

    A change compiles a new engine from every module; only a change that compiles
    replaces the current engine, which evaluations take a reference to, so a request
    never sees a half-applied change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _modules and _engine (held briefly)
        self._writes = threading.Lock()  # one change at a time
        self._modules: dict[str, str] = {}
        self._engine = self._compile({}, kind="put")

    def snapshot(self) -> tuple[dict[str, str], opa_bindings.OpaEngine]:
        with self._lock:
            return dict(self._modules), self._engine

    def replace(self, modules: dict[str, str], *, kind: str = "put") -> None:
        with self._writes:
            engine = self._compile(modules, kind=kind)
            with self._lock:
                self._modules, self._engine = dict(modules), engine

    def put(self, policy_id: str, source: str) -> None:
        with self._writes:
            current, _ = self.snapshot()
            if current.get(policy_id) == source:
                return  # OPA answers 200 without recompiling an unchanged module
            engine = self._compile({**current, policy_id: source}, kind="put")
            with self._lock:
                self._modules = {**current, policy_id: source}
                self._engine = engine

    def delete(self, policy_id: str) -> None:
        with self._writes:
            current, _ = self.snapshot()
            if policy_id not in current:
                raise PolicyRejected(404, _not_found(policy_id))
            rest = {k: v for k, v in current.items() if k != policy_id}
            engine = self._compile(rest, kind="delete")
            with self._lock:
                self._modules, self._engine = rest, engine

    @staticmethod
    def _compile(modules: dict[str, str], *, kind: str) -> opa_bindings.OpaEngine:
        try:
            return _engine(tuple(modules.items()))
        except opa_bindings.OpaError as exc:
            code = "invalid_operation" if kind == "delete" else "invalid_parameter"
            raise PolicyRejected(400, _compile_error(code, exc.message, modules)) from None


@functools.lru_cache(maxsize=8)
def _engine(modules: tuple[tuple[str, str], ...]) -> opa_bindings.OpaEngine:
    """The engine of exactly these modules (id, source), in this order. One that compiled
    is kept for the next stand-in given the same modules (most start from the pack: ~0.3 s
    of CPU each); an engine is never changed once compiled, and evaluations already share
    it between threads. One dropped from the cache is not closed: it may be serving."""
    engine = opa_bindings.OpaEngine()
    try:
        for policy_id, source in modules:
            engine.add_policy(policy_id, source)  # parses: parse errors raise here
        engine.eval_query("true")  # compiles every module: compile errors raise here
    except opa_bindings.OpaError:
        engine.close()
        raise
    return engine


class OpaStandIn:
    """OPA's REST API on 127.0.0.1, evaluated by the real OPA engine (see the module doc).

    `policy_dir` is loaded at start, as `opa run --server DIR` would (ids: paths relative
    to it); it survives `restart()`, unlike policies PUT over the API.
    """

    def __init__(
        self, policy_dir: Path | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host = host
        self._port = port
        self._startup: dict[str, str] = rego_sources(policy_dir) if policy_dir else {}
        self._policies = _Policies()
        self._policies.replace(self._startup)
        self._ast_cache: dict[str, Any] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._received = 0
        self._state = threading.Condition()  # guards faults, requests and the count
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the address to give a client (stable across restarts)."""
        return f"http://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> OpaStandIn:
        """Listen (on the same port as before, after a stop) and serve in a background thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self._port), _Handler)
        server.standin = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            # poll_interval: how soon serve_forever notices stop()
            target=server.serve_forever, kwargs={"poll_interval": 0.01},
            name=f"opa-standin-{self._port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: the port refuses connections and open ones are closed.

        Policies stay, as with a network partition; `restart()` is a process restart.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes delayed requests, which then drop their connection
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart(self) -> None:
        """Stop, forget the policies PUT over the API (OPA keeps them in memory), start."""
        self.stop()
        self._policies.replace(self._startup)
        self.start()

    def __enter__(self) -> OpaStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- policies, without HTTP ---------------------------------------------------

    @property
    def policies(self) -> dict[str, str]:
        """Policy id -> Rego source, as GET /v1/policies would list them."""
        return self._policies.snapshot()[0]

    def put_policy(self, policy_id: str, source: str) -> None:
        """As PUT /v1/policies/{id}; raises PolicyRejected with OPA's answer if it fails."""
        self._policies.put(policy_id, source)

    def delete_policy(self, policy_id: str) -> None:
        """As DELETE /v1/policies/{id}; raises PolicyRejected with OPA's answer if it fails."""
        self._policies.delete(policy_id)

    def load_policy_dir(self, directory: Path) -> list[str]:
        """Put every non-test .rego file below `directory` at once; returns their ids."""
        if not directory.is_dir():
            raise FileNotFoundError(f"no policy directory {directory}")
        sources = rego_sources(directory)
        current, _ = self._policies.snapshot()
        self._policies.replace({**current, **sources})
        return list(sources)

    # -- faults ---------------------------------------------------------------------

    def fail(
        self, status: int = 503, times: int | None = None, *, path_prefix: str = "",
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer `status` (JSON `body`) to the next `times` requests, or all until cleared."""
        self._add_fault(_Fault("fail", times, path_prefix, status=status, body=body))

    def delay(self, seconds: float, times: int | None = None, *, path_prefix: str = "") -> None:
        """Hold the next `times` requests (all, until cleared) `seconds` before answering."""
        self._add_fault(_Fault("delay", times, path_prefix, seconds=seconds))

    def drop(self, times: int | None = None, *, path_prefix: str = "") -> None:
        """Close the connection of the next `times` requests without answering."""
        self._add_fault(_Fault("drop", times, path_prefix))

    def clear_faults(self) -> None:
        with self._state:
            self._faults.clear()

    # -- what was asked ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered (or dropped) so far, in order."""
        with self._state:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The requests, once at least `count` have been handled; TimeoutError otherwise."""
        with self._state:
            if not self._state.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"{len(self._requests)} of {count} requests within {timeout}s")
            return list(self._requests)

    def wait_for_received(self, count: int, timeout: float = 5.0) -> int:
        """Wait until `count` requests have arrived (answered or not, e.g. held by a delay)."""
        with self._state:
            if not self._state.wait_for(lambda: self._received >= count, timeout):
                raise TimeoutError(f"{self._received} of {count} requests within {timeout}s")
            return self._received

    def clear_requests(self) -> None:
        with self._state:
            self._requests.clear()
            self._received = 0

    # -- internals --------------------------------------------------------------------

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining <= 0:
            raise ValueError("times must be positive (or None for until cleared)")
        with self._state:
            self._faults.append(fault)

    def _take_faults(self, path: str) -> list[_Fault]:
        """The faults that apply to this request, counting it against each."""
        taken = []
        with self._state:
            for fault in list(self._faults):
                if not path.startswith(fault.path_prefix):
                    continue
                taken.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
        return taken

    def _arrived(self) -> None:
        with self._state:
            self._received += 1
            self._state.notify_all()

    def _record(self, request: RecordedRequest) -> None:
        with self._state:
            self._requests.append(request)
            self._state.notify_all()

    def _policy_entry(self, policy_id: str, source: str) -> dict[str, Any]:
        return {"id": policy_id, "raw": source, "ast": self._ast(policy_id, source)}

    def _ast(self, policy_id: str, source: str) -> Any:
        """The module's AST as OPA's JSON, from OPA's own parser (rego.parse_module)."""
        key = f"{policy_id}\0{source}"
        if key not in self._ast_cache:
            with opa_bindings.OpaEngine() as engine:
                rows = engine.eval_query(
                    "ast := rego.parse_module(input.id, input.source)",
                    input={"id": policy_id, "source": source},
                )
            self._ast_cache[key] = rows[0]["ast"] if rows else None
        return self._ast_cache[key]

    def _data(self, path: str, value: Any, has_input: bool) -> tuple[int, dict[str, Any]]:
        """Evaluate data.<path> as POST /v1/data/<path> does; (status, JSON body)."""
        try:
            query = "result = " + _data_ref(path)
        except ValueError as exc:
            return 400, {"code": "invalid_parameter", "message": f"invalid path: {exc}"}
        modules, engine = self._policies.snapshot()
        try:
            rows = engine.eval_query(query, input=value if has_input else None)
        except opa_bindings.OpaError as exc:
            return 500, _eval_error(exc.message, modules)
        body: dict[str, Any] = {}
        if rows:
            body["result"] = rows[0]["result"]
        if not has_input:
            body["warning"] = {
                "code": "api_usage_warning", "message": "'input' key missing from the request",
            }
        return 200, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: OpaStandIn

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (it timed out, say) is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down kept-alive connections, so no client reaches a stopped server."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections to OPA
    server: _Server

    def setup(self) -> None:
        super().setup()
        # As Go's server: no Nagle delay (with it, a kept-alive client waits ~40 ms for
        # the delayed ACK on every answer).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet, as tests expect

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _handle(self) -> None:
        standin = self.server.standin
        raw = self._read_body()
        if raw is None:
            return
        path = urlsplit(self.path).path
        standin._arrived()
        status: int | None = None
        try:
            for fault in standin._take_faults(path):
                if fault.kind == "delay" and standin._stopping.wait(fault.seconds):
                    self.close_connection = True  # stopped while holding it: drop it
                    return
                if fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault.kind == "fail":
                    status = fault.status
                    self._send_json(status, fault.body or _FAULT_BODY)
                    return
            status = self._route(standin, raw)
        finally:
            standin._record(RecordedRequest(
                self.command, self.path, raw, status, self.client_address[1],
            ))

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None after answering 400."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))
        except ValueError:
            self.send_error(400, "bad Content-Length or chunk size")
            return None

    # -- routing, as OPA 1.x's ServeMux ------------------------------------------------

    def _route(self, standin: OpaStandIn, raw: bytes) -> int:
        url = urlsplit(self.path)
        path, method = url.path, self.command
        route = _match(path)
        if route is None:
            return self._send(404, _NOT_FOUND, "text/plain; charset=utf-8")
        # OPA wraps every route: HEAD is refused, then a trailing slash is redirected.
        if method == "HEAD":
            return self._send(405, b"", None)
        if path != "/" and path.endswith("/"):
            return self._redirect(path.rstrip("/") or "/")
        name, rest = route
        params = parse_qs(url.query, keep_blank_values=True)
        if name == "health":
            return self._send_json(200, {}) if method == "GET" else self._send(405, b"", None)
        if name == "data":
            return self._data_route(standin, method, rest, raw, params)
        if name == "policies":
            return self._list_policies(standin, params) if method == "GET" else (
                self._send(405, b"", None)
            )
        if name == "policy":
            return self._policy_route(standin, method, unquote(rest), raw, params)
        if name == "index" and method not in ("GET", "POST"):
            return self._send(405, b"", None)
        if name == "index" and method == "GET":
            return self._send(200, b"<html><body>OPA stand-in</body></html>\n",
                              "text/html; charset=utf-8")
        return self._not_implemented()

    def _data_route(self, standin: OpaStandIn, method: str, path: str, raw: bytes,
                    params: dict[str, list[str]]) -> int:
        if method == "POST":
            return self._post_data(standin, path, raw, params)
        if method == "GET":
            return self._get_data(standin, path, params)
        if method in ("PUT", "PATCH", "DELETE"):
            return self._not_implemented()
        return self._send(405, b"", None)

    def _policy_route(self, standin: OpaStandIn, method: str, policy_id: str, raw: bytes,
                      params: dict[str, list[str]]) -> int:
        if method == "GET":
            return self._get_policy(standin, policy_id, params)
        if method == "PUT":
            return self._put_policy(standin, policy_id, raw, params)
        if method == "DELETE":
            return self._delete_policy(standin, policy_id, params)
        return self._send(405, b"", None)

    def _post_data(
        self, standin: OpaStandIn, path: str, raw: bytes, params: dict[str, list[str]]
    ) -> int:
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                raw = gzip.decompress(raw)
            request = _read_json(raw) if raw.strip() else {}
        except (ValueError, OSError) as exc:
            return self._send_json(400, {
                "code": "invalid_parameter",
                "message": f"body contains malformed input document: {exc}",
            })
        if not isinstance(request, dict):
            return self._send_json(400, {
                "code": "invalid_parameter",
                "message": "body contains malformed input document: json: cannot unmarshal "
                f"{_go_kind(request)} into Go value of type types.DataRequestV1",
            })
        value = request.get("input")
        # A JSON null decodes to Go's nil *any: OPA evaluates as without input.
        started = time.perf_counter_ns()
        status, body = standin._data(path, value, value is not None)
        return self._answer_data(status, body, params, started)

    def _get_data(self, standin: OpaStandIn, path: str, params: dict[str, list[str]]) -> int:
        value = None
        if params.get("input"):
            try:
                value = _read_json(params["input"][-1].encode())
            except ValueError as exc:
                return self._send_json(400, {
                    "code": "invalid_parameter",
                    "message": f"parameter contains malformed input document: {exc}",
                })
        started = time.perf_counter_ns()
        status, body = standin._data(path, value, value is not None)
        if value is None:
            body.pop("warning", None)  # GET warns only on POST
        return self._answer_data(status, body, params, started)

    def _answer_data(
        self, status: int, body: dict[str, Any], params: dict[str, list[str]], started: int
    ) -> int:
        if status == 200 and _flag(params, "metrics"):
            body["metrics"] = {"timer_server_handler_ns": time.perf_counter_ns() - started}
        return self._send_json(status, body, pretty=_flag(params, "pretty"))

    def _list_policies(self, standin: OpaStandIn, params: dict[str, list[str]]) -> int:
        modules, _ = standin._policies.snapshot()
        result = [standin._policy_entry(i, modules[i]) for i in sorted(modules)]
        return self._send_json(200, {"result": result}, pretty=_flag(params, "pretty"))

    def _get_policy(
        self, standin: OpaStandIn, policy_id: str, params: dict[str, list[str]]
    ) -> int:
        modules, _ = standin._policies.snapshot()
        if policy_id not in modules:
            return self._send_json(404, _not_found(policy_id))
        entry = standin._policy_entry(policy_id, modules[policy_id])
        return self._send_json(200, {"result": entry}, pretty=_flag(params, "pretty"))

    def _put_policy(
        self, standin: OpaStandIn, policy_id: str, raw: bytes, params: dict[str, list[str]]
    ) -> int:
        try:
            standin.put_policy(policy_id, raw.decode("utf-8", errors="replace"))
        except PolicyRejected as exc:
            return self._send_json(exc.status, exc.body, pretty=_flag(params, "pretty"))
        return self._send_json(200, {}, pretty=_flag(params, "pretty"))

    def _delete_policy(
        self, standin: OpaStandIn, policy_id: str, params: dict[str, list[str]]
    ) -> int:
        try:
            standin.delete_policy(policy_id)
        except PolicyRejected as exc:
            return self._send_json(exc.status, exc.body, pretty=_flag(params, "pretty"))
        return self._send_json(200, {}, pretty=_flag(params, "pretty"))

    def _not_implemented(self) -> int:
        return self._send_json(501, {
            "code": "internal_error",
            "message": f"{self.command} {urlsplit(self.path).path} is not implemented by "
            "the OPA stand-in (tests/standins/opa_standin.py)",
        })

    # -- writing -----------------------------------------------------------------------

    def _redirect(self, location: str) -> int:
        body = b""
        content_type = None
        if self.command == "GET":  # Go's http.Redirect writes a body for GET only
            body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
            content_type = "text/html; charset=utf-8"
        return self._send(301, body, content_type, {"Location": location})

    def _send_json(self, status: int, value: Any, *, pretty: bool = False) -> int:
        return self._send(status, _go_json(value, pretty), "application/json")

    def _send(
        self, status: int, body: bytes, content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> int:
        self.send_response_only(status)
        self.send_header("Date", formatdate(usegmt=True))
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n" + body)  # headers and body in one write
        self.flush_headers()
        return status


def _match(path: str) -> tuple[str, str] | None:
    """(route, the rest of the path) for OPA's API routes, or None (404)."""
    if path == "/":
        return "index", ""
    if path == "/health":
        return "health", ""
    for prefix, name in (
        ("/v1/data", "data"), ("/v1/policies", "policies"), ("/v1/query", "other"),
        ("/v0/data", "other"), ("/health", "other"), ("/v1/compile", "other"),
    ):
        if path == prefix:
            return name, ""
        if path.startswith(prefix + "/"):
            return ("policy" if name == "policies" else name), path[len(prefix) + 1:]
    if path in ("/v1/config", "/v1/status"):
        return "other", ""
    return None


def _data_ref(path: str) -> str:
    """`data["a"]["b"]` for the URL path a/b, with OPA's rules: numbers index, no quotes."""
    ref = "data"
    for segment in path.split("/"):
        if not segment:
            continue
        segment = unquote(segment)
        if '"' in segment:
            raise ValueError(f"invalid ref term '{segment}'")
        ref += f"[{segment}]" if re.fullmatch(r"[+-]?\d+", segment) else f"[{json.dumps(segment)}]"
    return ref


def _read_json(raw: bytes) -> Any:
    """JSON as Go reads it: invalid UTF-8 and lone surrogates become U+FFFD; no NaN."""
    return _fix_surrogates(json.loads(raw.decode("utf-8", errors="replace"),
                                      parse_constant=_refuse_constant))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _fix_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    return value


def _go_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _go_json(value: Any, pretty: bool) -> bytes:
    """JSON as Go's encoding/json writes it: HTML-safe escapes and a closing newline."""
    text = json.dumps(value, ensure_ascii=False, indent=2 if pretty else None,
                      separators=None if pretty else (",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return (text + "\n").encode()


def _flag(params: dict[str, list[str]], name: str) -> bool:
    values = params.get(name)
    if values is None:
        return False
    return values == [""] or any(v.lower() == "true" for v in values)


def _not_found(policy_id: str) -> dict[str, Any]:
    return {
        "code": "resource_not_found",
        "message": f'storage_not_found_error: policy id "{policy_id}"',
    }


# -- OPA's error text back into OPA's error JSON -----------------------------------------

_COUNT = re.compile(r"^(?:bundle activation failed: )?\d+ errors? occurred:\s*")
_LOCATED = re.compile(r"^(?P<row>\d+): (?P<code>[a-z_]+): (?P<message>.*)$", re.DOTALL)
_ANY_LOCATED = re.compile(r"^(?P<file>.+?):(?P<row>\d+): (?P<code>[a-z_]+): (?P<message>.*)$")
_UNLOCATED = re.compile(r"^(?P<code>[a-z_]+): (?P<message>.*)$")


def _compile_error(code: str, text: str, modules: dict[str, str]) -> dict[str, Any]:
    """OPA's 400 body for a policy change that does not parse or compile.

    Several errors (OPA's ast.Errors) come back as `errors`; a lone error that is not
    in such a list (e.g. "empty module") is OPA's plain {code, message}.
    """
    counted = _COUNT.match(text)
    if not counted:
        return {"code": code, "message": text}
    errors = _parse_errors(text[counted.end():], modules)
    return {"code": code, "message": _COMPILE_MESSAGE, "errors": errors}


def _eval_error(text: str, modules: dict[str, str]) -> dict[str, Any]:
    """OPA's 500 body for an evaluation error (topdown.Error under `errors`)."""
    errors = _parse_errors(text, modules)
    return {"code": "internal_error", "message": _EVAL_MESSAGE, "errors": errors}


def _parse_errors(text: str, modules: dict[str, str]) -> list[dict[str, Any]]:
    """Each `FILE:ROW: CODE: MESSAGE` entry (with its tab-indented detail lines)."""
    entries: list[list[str]] = []
    for line in text.split("\n"):
        if line.startswith("\t") and entries:
            entries[-1].append(line[1:])
        elif line.strip():
            entries.append([line])
    return [_parse_entry(entry[0], entry[1:], modules) for entry in entries]


def _parse_entry(head: str, details: list[str], modules: dict[str, str]) -> dict[str, Any]:
    file = row = None
    match = None
    for policy_id in sorted(modules, key=len, reverse=True):
        if head.startswith(policy_id + ":"):
            match = _LOCATED.match(head[len(policy_id) + 1:])
            if match:
                file = policy_id
                break
    if match is None:
        match = _ANY_LOCATED.match(head)
        if match:
            file = match["file"]
    if match is None:
        plain = _UNLOCATED.match(head)
        if plain is None:
            return {"code": "rego_error", "message": head}
        return {"code": plain["code"], "message": plain["message"]}
    row = int(match["row"])
    error: dict[str, Any] = {"code": match["code"], "message": match["message"]}
    source_line = _line(modules.get(file or "", ""), row)
    col = len(source_line) - len(source_line.lstrip()) + 1 if source_line.strip() else 1
    if len(details) == 2 and details[1].strip() == "^":
        # A parse error: OPA's detail is the line (its leading tabs trimmed) and a caret.
        shown, caret = details
        tabs = len(source_line) - len(source_line.lstrip("\t"))
        if source_line.lstrip("\t") != shown:
            tabs = 0
        line = "\t" * tabs + shown
        idx = caret.index("^") + tabs
        col = idx + 1
        error["details"] = {"line": line, "idx": idx}
    error["location"] = {"file": file, "row": row, "col": col}
    return error


def _line(source: str, row: int) -> str:
    lines = source.split("\n")
    return lines[row - 1] if 0 < row <= len(lines) else ""


# -- as a process ---------------------------------------------------------------------


def _serve(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standins.opa_standin",
        description="OPA's REST API on the real OPA engine (stand-in for the OPA binary).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--policies", type=Path, help="directory of .rego files to load")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.policies is not None and not args.policies.is_dir():
        parser.error(f"--policies: {args.policies} is not a directory")
    try:
        standin = OpaStandIn(args.policies, host=args.host, port=args.port).start()
    except PolicyRejected as exc:
        print(f"opa stand-in: policies rejected: {json.dumps(exc.body)}", flush=True)
        return 1
    except OSError as exc:
        print(f"opa stand-in: cannot listen on {args.host}:{args.port}: {exc}", flush=True)
        return 1
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    ids = ", ".join(standin.policies) or "none"
    print(f"opa stand-in serving {standin.url} (policies: {ids})", flush=True)
    while not done.wait(0.5):  # a timed wait, so the signal handler gets to run
        pass
    standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve())

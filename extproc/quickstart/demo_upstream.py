"""The demo upstream `tollgate up` puts behind Envoy: synthetic customers, SQL, echo,
and a scripted model.

    GET  /api/customers   JSON records with names, e-mails, US SSNs, card numbers and
                          (a leaky API) portal passwords;
                          compressed as Accept-Encoding asks (gzip, deflate, br), or
                          `?encoding=` forces one (an upstream ignoring the request);
                          `?repeat=N` repeats the records (large bodies)
    GET  /api/events      the same records as a text/event-stream, one event per record
                          (`?delay_ms=` between events), as an LLM streams a completion;
                          `?split=N` writes each event in chunks of N bytes
    POST /sql             {"sql": "..."} run on a SQLite demo database
                          -> {"columns": [...], "rows": [...]}
    GET  /echo            the method, path and headers this server received
    POST /v1/chat/completions   the demo model (`tollgate-demo`), OpenAI-compatible,
                          streamed or not: it calls the tool the user's message names,
                          then answers in text with what the tool returned (see
                          `demo_model_reply`): enough for an agent to run on, offline
    GET  /v1/models       the demo model

Every value is synthetic (card numbers are the issuers' published test numbers,
SSNs are in valid ranges but made up), so masking has something realistic to
find and nothing real can leak. The server also remembers what it received,
so tests can assert what did — and did not — get past the gateway.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import sqlite3
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import brotli

from extproc.quickstart import openai_wire
from extproc.quickstart.openai_wire import Reply, ToolCall

CUSTOMERS: tuple[dict[str, str], ...] = (
    {"id": "c-1001", "name": "Ada Lovelace", "email": "ada.lovelace@example.com",
     "ssn": "512-34-6789", "card_number": "4111 1111 1111 1111", "phone": "+1 415 555 0132",
     "password": "correct-horse-battery"},
    {"id": "c-1002", "name": "Grace Hopper", "email": "grace.hopper@example.org",
     "ssn": "219-09-9999", "card_number": "5555555555554444", "phone": "+1 212 555 0175",
     "password": "cobol-forever-1959"},
    {"id": "c-1003", "name": "Alan Turing", "email": "alan.turing@example.net",
     "ssn": "078-05-1120", "card_number": "3782 822463 10005", "phone": "+44 20 7946 0958",
     "password": "enigma-1942"},
    {"id": "c-1004", "name": "Katherine Johnson", "email": "k.johnson@example.com",
     "ssn": "457-55-5462", "card_number": "6011-1111-1111-1117", "phone": "+1 757 555 0199",
     "password": "orbital-mechanics"},
)


@dataclass(frozen=True)
class Received:
    """One request as the upstream saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class DemoDatabase:
    """An in-memory SQLite database seeded with the customers; one per server."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        columns = tuple(CUSTOMERS[0])
        self._db.execute(f"CREATE TABLE customers ({', '.join(columns)})")
        self._db.executemany(
            f"INSERT INTO customers VALUES ({', '.join('?' for _ in columns)})",
            [tuple(c.values()) for c in CUSTOMERS],
        )
        self._db.commit()

    def run(self, sql: str) -> dict[str, Any]:
        with self._lock:
            cursor = self._db.execute(sql)
            rows = cursor.fetchall()
            self._db.commit()
        columns = [d[0] for d in cursor.description] if cursor.description else []
        return {"columns": columns, "rows": [list(r) for r in rows]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's upstream connections expect
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm
    # holds the body back for the peer's delayed ACK (~40 ms a response).
    disable_nagle_algorithm = True
    server: _Server

    def _handle(self) -> None:
        body = self._receive()
        route = (self.command, self.path.partition("?")[0])
        query = parse_qs(self.path.partition("?")[2])
        if route == ("GET", "/api/customers"):
            repeat = int(query.get("repeat", ["1"])[0])
            encoding = query.get("encoding", [None])[0] or _preferred_encoding(
                self.headers.get("accept-encoding", "")
            )
            self._json(200, {"customers": list(CUSTOMERS) * repeat}, encoding)
        elif route == ("GET", "/api/events"):
            self._events(
                int(query.get("delay_ms", ["0"])[0]), int(query.get("split", ["0"])[0])
            )
        elif route[1] == "/echo":
            self._json(200, {
                "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                "body": body.decode("utf-8", "replace"),
            })
        elif route == ("POST", "/sql"):
            self._sql(body)
        elif route == ("POST", "/v1/chat/completions"):
            self._chat(body)
        elif route == ("GET", "/v1/models"):
            openai_wire.send_json(self, 200, openai_wire.model_list((DEMO_MODEL,)))
        else:
            self._json(404, {"error": "not_found", "method": route[0], "path": route[1]})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _sql(self, body: bytes) -> None:
        try:
            sql = json.loads(body)["sql"]
            if not isinstance(sql, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._json(400, {"error": "bad_request", "message": 'expected {"sql": "..."}'})
            return
        try:
            self._json(200, self.server.database.run(sql))
        except sqlite3.Error as exc:
            self._json(400, {"error": "sql_error", "message": str(exc)})

    def _chat(self, body: bytes) -> None:
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        error = openai_wire.chat_request_error(request)
        if error is not None:
            openai_wire.send_json(self, 400, {"error": error})
        else:
            openai_wire.send_reply(self, demo_model_reply(request), request)

    def _receive(self) -> bytes:
        body = openai_wire.read_body(self)
        path, _, query = self.path.partition("?")
        self.server.received.append(
            Received(self.command, path, query, dict(self.headers.items()), body)
        )
        return body

    def _json(self, status: int, payload: Any, encoding: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if encoding:
            # An encoding it cannot produce is claimed all the same: an upstream using a
            # codec tollgate does not know, for tests of that.
            data = _ENCODERS.get(encoding, bytes)(data)
            self.send_header("content-encoding", encoding)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, delay_ms: int, split: int) -> None:
        """Server-sent events, each written and flushed alone (chunked transfer)."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for customer in CUSTOMERS:
            event = f"data: {json.dumps(customer)}\n\n".encode()
            size = split or len(event)
            for start in range(0, len(event), size):
                piece = event[start:start + size]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            time.sleep(delay_ms / 1000)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the gateway's trace is the log; per-request lines here would be noise


_ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}


def _preferred_encoding(accept_encoding: str) -> str | None:
    """The first encoding the client accepts that this server can produce."""
    for item in accept_encoding.split(","):
        name = item.split(";", 1)[0].strip().lower()
        if name in _ENCODERS:
            return name
    return None


DEMO_MODEL = "tollgate-demo"
_QUOTED = re.compile(r"`([^`]+)`")


def demo_model_reply(request: dict[str, Any]) -> Reply:
    """The demo model's answer to a chat request: scripted, read from the conversation.

    Once tool results follow the last user message, it answers in text with what each
    tool returned. Before, it calls the tool that message names (of the tools offered,
    the one named first), with the message's first `backquoted` text as the tool's first
    parameter, if it has one. Naming no tool, it says which it was offered. So an agent
    framework runs its whole loop (model, tool, model) with no model to download.
    """
    messages = request["messages"] if isinstance(request["messages"], list) else []
    messages = [m for m in messages if isinstance(m, dict)]
    asked = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    since = messages[asked + 1:]
    called = {c.get("id"): c["function"].get("name")
              for m in since if isinstance(m.get("tool_calls"), list) for c in m["tool_calls"]
              if isinstance(c, dict) and isinstance(c.get("function"), dict)}
    results = [m for m in since if m.get("role") == "tool"]
    if results:
        return Reply(text="\n".join(
            f"{called.get(m.get('tool_call_id')) or 'The tool'} returned: "
            f"{openai_wire.message_text(m)}" for m in results))
    tools = [t["function"] for t in request.get("tools") or ()
             if isinstance(t, dict) and isinstance(t.get("function"), dict)
             and isinstance(t["function"].get("name"), str)]
    text = openai_wire.message_text(messages[asked]) if asked >= 0 else ""
    named = [(found.start(), tool) for tool in tools
             if (found := re.search(rf"(?<!\w){re.escape(tool['name'])}(?!\w)", text))]
    if not named:
        offered = ", ".join(t["name"] for t in tools) or "none"
        return Reply(text=f"I am tollgate's demo model. Name one of the tools I was offered "
                          f"({offered}) and I will call it.")
    _, tool = min(named, key=lambda found: found[0])
    parameters = tool.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    first = next(iter(properties), None) if isinstance(properties, dict) else None
    quoted = _QUOTED.search(text)
    arguments = {first: quoted.group(1)} if first is not None and quoted else {}
    return Reply(tool_calls=(ToolCall(tool["name"], arguments),))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.database = DemoDatabase()
        self.received: list[Received] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (Envoy closing an idle keep-alive connection, say) is
        not an error worth a traceback in `tollgate up`'s output; anything else is."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class DemoUpstream:
    """The demo upstream on a background thread (port 0 picks a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port))
        # stop() waits for the loop to notice, which it does once per poll interval:
        # socketserver's 0.5 s default kept every test's gateway half a second in its stop.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def requests(self) -> list[Received]:
        return self._server.received

    def start(self) -> DemoUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tollgate's demo upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10080)
    args = parser.parse_args(argv)
    server = _Server((args.host, args.port))
    # SIGTERM (what `tollgate up`, compose and Kubernetes send) ends it cleanly, also as PID 1.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

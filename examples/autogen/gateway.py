"""What both agents share: the gateway's address, the agent's token, their tasks and
their two tools.

Everything the agents do goes through the gateway with the agent's own token: the
model's calls (the `llm` route, `/v1/`) and both tools, plain HTTP calls to the demo
upstream behind it. The agent never holds a credential of the systems it reaches.

A tool returns what the gateway answered, a refusal included: an agent that reads why it
was refused can say so, where an exception would end its run.

One run is one trace: every request of the run, the model's and the tools', carries a W3C
`traceparent` naming the run's trace, so the gateway's spans and records of the run share
its id. It is sent as a plain header (the clients' `default_headers`, the MCP transport's
headers) rather than by an HTTP library's instrumentation, which works whatever library a
client sends with (openai 3.x sends with `httpx2`, which OpenTelemetry's httpx
instrumentation does not patch).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

# The quickstart's listener (`make run`); TOLLGATE_URL for another.
URL = os.environ.get("TOLLGATE_URL", "http://127.0.0.1:10000").rstrip("/")
MODEL = "tollgate-demo"  # the demo upstream's scripted model

# This run's trace, and the span every request of it names as its parent: the run's.
TRACE_ID = secrets.token_hex(16)
RUN_SPAN_ID = secrets.token_hex(8)

# What the agent is asked: the demo model calls the tool each names (with the `quoted`
# text as its argument).
TASKS = (
    "Use list_customers to show me our customers.",
    "Use run_sql to run `SELECT name, email FROM customers`.",
    "Use run_sql to run `DROP TABLE customers`.",
)


def require_gateway() -> None:
    """Exit saying what to do when nothing listens at URL: an agent run against no
    gateway would otherwise report each model call's connection error as an answer."""
    address = urllib.parse.urlsplit(URL)
    try:
        socket.create_connection((address.hostname, address.port or 80), timeout=5).close()
    except OSError:
        sys.exit(f"nothing listens at {URL}: start the quickstart first (`make run` in "
                 "another shell), or set TOLLGATE_URL")


def token() -> str:
    """The agent's token: `make autogen` mints one; by hand, export what `tollgate up`
    printed (export TOKEN=...)."""
    found = os.environ.get("TOKEN", "").strip()
    if not found:
        sys.exit("no agent token: export TOKEN=... as `tollgate up` printed it, or run "
                 "`make autogen` (it makes one)")
    return found


def trace_headers() -> dict[str, str]:
    """The header that puts a request in this run's trace (sampled: `-01`)."""
    return {"traceparent": f"00-{TRACE_ID}-{RUN_SPAN_ID}-01"}


def announce_trace() -> None:
    """Say where the run's record is: every exchange of it is under one trace id."""
    say("trace", f"{TRACE_ID} (its record: tollgate audit replay {TRACE_ID})")


def say(what: str, text: str) -> None:
    """One line of what the agent saw; both examples print the same way."""
    print(f"{what:>16}: {text}", flush=True)


def refusal(error: Exception) -> str:
    """What the gateway said when it answered a model call in the model's place: the
    message of its OpenAI-shaped error (`tollgate refused: <reasons> (trace <id>)`)."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(error)


def _call(method: str, path: str, body: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(
        URL + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"authorization": f"Bearer {token()}", "content-type": "application/json",
                 **trace_headers()},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.read().decode()
    except urllib.error.HTTPError as refused:
        return f"HTTP {refused.code}: {refused.read().decode()}"


def list_customers() -> str:
    """List the customers of the shop, as JSON."""
    return _call("GET", "/api/customers")


def run_sql(query: str) -> str:
    """Run one SQL statement on the shop's database; the rows come back as JSON."""
    return _call("POST", "/sql", {"sql": query})

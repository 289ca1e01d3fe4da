"""Bounded resources, end to end through a real Envoy (envoy/quickstart.yaml) and tollgate:
a client too slow to send its headers is cut off, one agent cannot open unlimited pending
approvals, nor take the whole audit record's queue, nor fill its disk.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import Held, pending_for
from tests.e2e.test_metrics_e2e import of, scrape
from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory, module_gateway

# envoy/quickstart.yaml's request_headers_timeout.
HEADERS_TIMEOUT = 10


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """The default pack; two pending approvals per identity, holds of one second."""
    with module_gateway(tmp_path_factory, otlp, "limits", settings={
            "approvals": {"max_pending_per_identity": 2, "max_hold_seconds": 1}}) as running:
        yield running


def test_a_client_sending_its_headers_too_slowly_is_answered_408_and_cut_off(
    gw: Gateway,
) -> None:
    """Slowloris: the request line, then a header a byte every half second, for longer
    than the timeout. Envoy answers 408 (in tollgate's JSON) after request_headers_timeout
    and closes the connection while the client is still sending; tollgate is never asked."""
    header = b"x-slow: " + b"a" * 200 + b"\r\n"
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", gw.ports.listener), timeout=30) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nhost: gateway.test\r\n")
        sock.setblocking(False)
        closed = False
        for byte in header:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            try:
                while chunk := sock.recv(65536):
                    received += chunk
                closed = True  # b"": Envoy closed the connection
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed = True
            if closed:
                break
            time.sleep(0.5)  # the slow client's pace
        took = time.monotonic() - started
    assert closed, "Envoy kept the connection of a client sending its headers for 100 s"
    assert HEADERS_TIMEOUT - 1 <= took <= HEADERS_TIMEOUT + 5, took
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received
    assert json.loads(body)["error"] == "request_timeout"
    assert gw.envoy_stat("http.ingress.downstream_rq_header_timeout") == 1
    assert gw.envoy_stat("http.ingress.ext_proc.streams_started") == 0


def held(gw: Gateway, table: str, token: str) -> tuple[int, dict]:
    """A DELETE without WHERE, which the default pack holds for a dba."""
    reply = gw.request("POST", "/sql", {"sql": f"DELETE FROM {table}"}, token=token)
    answer = reply.json()
    assert answer["trace_id"] == reply.trace_id
    return reply.status, answer


def test_an_identity_with_max_pending_approvals_is_refused_429_others_still_ask(
    gw: Gateway,
) -> None:
    agent = tokens.token("flooder", ["agents"])
    for table in ("t1", "t2"):  # each waits its hold (1 s), is refused, stays pending
        status, answer = held(gw, table, agent)
        assert (status, answer["error"]) == (403, "approval_required"), answer
    status, answer = held(gw, "t3", agent)
    assert (status, answer["error"]) == (429, "too_many_pending_approvals"), answer
    assert "flooder already has 2 approvals pending (at most 2)" in answer["message"]
    assert answer["max_pending"] == 2
    # A retry of a pending request waits on its own approval again; another agent asks.
    assert held(gw, "t1", agent)[1]["error"] == "approval_required"
    assert held(gw, "t3", tokens.token("careful", ["agents"]))[1]["error"] == (
        "approval_required")
    assert gw.upstream.requests == []


def test_an_identity_holding_its_share_of_the_record_queue_is_refused_429_alone(
    make_gateway: GatewayFactory,
) -> None:
    """A queue of 4 records, half of it per identity: an agent with two exchanges in
    flight (held for approval: each holds its record's place) is refused its third,
    `recording_quota`, while another agent passes."""
    gw = make_gateway(settings={"recording": {"queue_size": 4, "identity_share": 0.5},
                                "approvals": {"max_hold_seconds": 30}})
    agent = tokens.token("flooder", ["agents"])
    waiting = [Held(lambda t=table: held(gw, t, agent)) for table in ("t1", "t2")]
    for table in ("t1", "t2"):
        pending_for(gw, f"DELETE FROM {table}")
    # Each held request's decision record is committed as its wait begins, just after its
    # approval is made: the queue holds the two held exchanges alone once those are in.
    stack.wait_until(lambda: of(scrape(gw), "tollgate_record_queue_depth") == 2, 10,
                     "the queue to hold the two held exchanges alone")
    reply = gw.request("GET", "/echo", token=agent)
    answer = reply.json()
    assert (reply.status, answer["error"]) == (429, "recording_quota"), answer
    assert "flooder has 2 records waiting to be written" in answer["message"]
    assert answer["trace_id"] == reply.trace_id
    assert gw.request("GET", "/echo", token=tokens.token("careful", ["agents"])).status == 200
    assert not any(w.answered for w in waiting)


def test_an_identity_over_its_byte_budget_of_the_record_is_refused_429_alone(
    make_gateway: GatewayFactory,
) -> None:
    """A budget of 8 KiB of bodies an hour per identity: an agent posting queries of
    2 KiB (their rows, as large, come back) is refused `recording_quota` once its records
    hold more than that, saying which budget and when it refills, while another agent
    passes."""
    budget = 8 * 1024
    gw = make_gateway(settings={"recording": {"identity_bytes_per_hour": budget}})
    query = {"sql": f"SELECT '{'x' * 2048}' AS pad"}
    agent = tokens.token("flooder", ["agents"])
    passed = 0
    while (reply := gw.request("POST", "/sql", query, token=agent)).status == 200:
        passed += 1
        assert passed * 4096 <= budget + 4096, "recorded past its budget, not refused"
    answer = reply.json()
    assert (reply.status, answer["error"]) == (429, "recording_quota"), answer
    assert passed >= 2  # what fits in the budget passed
    assert "flooder has used its byte budget of the audit record, 8 KiB an hour " \
           "(recording.identity_bytes_per_hour); it may record again in " in answer["message"]
    assert answer["trace_id"] == reply.trace_id
    careful = gw.request("POST", "/sql", query, token=tokens.token("careful", ["agents"]))
    assert careful.status == 200, careful.body
    assert gw.request("POST", "/sql", query, token=agent).status == 429

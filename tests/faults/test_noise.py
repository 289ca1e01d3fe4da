"""Cut exchanges leave no false alarm in the log, and an MCP server's `id: null` error is
no forged answer (issue 87).

Envoy resets an ext_proc stream as its last answer reaches it, when its client goes, or
when tollgate took longer than Envoy waits: the read tollgate has under way ends, and
its handler is cancelled, in the same turn of the loop. A read run as a task of its own
(an exchange's next answer, raced against its session's end) that ended so was left with
its exception untaken (StopAsyncIteration, StreamEnded), and asyncio logged it at ERROR
with a traceback ("Task exception was never retrieved"), for most cut exchanges until
11582a1. Here a real gRPC stream is cut at each phase, the cut delivered as grpc
delivers a reset, and the collector runs, as asyncio's destructor logs only then.

An MCP server answers `id: null` to a request whose id it could not read (JSON-RPC 2.0);
on a call's stream that is the call's answer, not another request's.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from extproc.exchange.live import LiveSessions
from extproc.exchange.live_requests import RequestSessions
from extproc.http.front import ExtProcServicer
from tests.http import test_front
from tests.http.test_front import (
    ALLOW_UNLESS,
    MASK_ALL,
    Stream,
    body,
    get,
    headers,
    piece,
    post,
    response_headers,
    sse_headers,
)
from tests.http.test_mcp_answer import CALL, answered, events, mcp_pipeline, streamed
from tests.support.fakes import ListedResponse, MemoryPins
from tests.support.waiting import until

pytestmark = [pytest.mark.slow]

NEVER_TAKEN = "exception was never retrieved"


class _Cuts:
    """The handlers cut, and those ended since: counted, not kept (one kept would keep
    what it left uncollected, and asyncio logs an untaken exception only then)."""

    cut = ended = 0

    @staticmethod
    def cutting(handler: asyncio.Task[Any]) -> None:
        handler.cancel()
        handler.add_done_callback(_Cuts._ended)
        _Cuts.cut += 1

    @staticmethod
    def _ended(_: object) -> None:
        _Cuts.ended += 1


class _CutAtEnd:
    """Envoy's requests, as grpc delivers a reset while tollgate waits for the next: the
    read under way ends, and the handler's task is cancelled in the same turn."""

    def __init__(self, requests: AsyncIterator[ProcessingRequest], handler: asyncio.Task[Any]
                 ) -> None:
        self._requests, self._handler = aiter(requests), handler

    def __aiter__(self) -> _CutAtEnd:
        return self

    async def __anext__(self) -> ProcessingRequest:
        try:
            return await anext(self._requests)
        except StopAsyncIteration:
            _Cuts.cutting(self._handler)
            raise


def _cut_servicer(after_answers: int | None = None) -> type[ExtProcServicer]:
    """The servicer, its exchanges in live sessions (as `tollgate serve` runs it), each
    stream cut as its requests end; or, `after_answers`, as grpc has taken that many
    answers (Envoy resets a stream as its last answer reaches it)."""

    class Cut(ExtProcServicer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["live"] = RequestSessions(LiveSessions(), 3600)
            super().__init__(*args, **kwargs)

        async def Process(self, requests: AsyncIterator[ProcessingRequest],
                          context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[ProcessingResponse]:
            handler = asyncio.current_task()
            assert handler is not None
            answers = 0
            async for answer in super().Process(_CutAtEnd(requests, handler), context):
                yield answer
                answers += 1
                if answers == after_answers:
                    _Cuts.cutting(handler)

    return Cut


def _played(scenario: Callable[[Stream], Awaitable[None]], monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture, policy: str, target: dict[str, Any],
            after_answers: int | None = None, half_close: bool = True) -> str:
    """What asyncio logged at ERROR while `scenario` played a stream, then cut it, and
    after the collector ran (asyncio's destructor logs an untaken exception only as it
    is collected)."""
    async def then_cut(stream: Stream) -> None:
        await scenario(stream)
        if half_close:
            await stream._call.done_writing()  # the read under way ends: the cut
        await until(lambda: _Cuts.ended, "the cut handler's end")
        stream._call.cancel()  # the reset's other half: the client is gone

    monkeypatch.setattr(test_front, "ExtProcServicer", _cut_servicer(after_answers))
    monkeypatch.setattr(_Cuts, "cut", 0)
    monkeypatch.setattr(_Cuts, "ended", 0)
    with caplog.at_level(logging.ERROR, "asyncio"):
        test_front.run(then_cut, policy, **target)
        gc.collect()
    assert (_Cuts.cut, _Cuts.ended) == (1, 1)
    return caplog.text


def _sse(*messages: Any) -> list[bytes]:
    return [f"data: {json.dumps(m)}\n\n".encode() for m in messages]


def _mcp_post(session: str | None) -> ProcessingRequest:
    named = {"mcp-session-id": session} if session else {}
    return headers({":method": "POST", ":path": "/mcp", "content-type": "application/json",
                    "accept": "application/json, text/event-stream", **named}, False)


async def _awaiting_body(stream: Stream) -> None:
    await stream.send(post())


async def _awaiting_response_headers(stream: Stream) -> None:
    await stream.send(get())


async def _awaiting_response_body(stream: Stream) -> None:
    await stream.send(get())
    await stream.send(response_headers(200, False))


async def _awaiting_a_streamed_piece(stream: Stream) -> None:
    await stream.send(get())
    await stream.tell(sse_headers())
    await stream.tell(piece(b"data: one\n\n"))
    await stream.read()
    await stream.read()


def _awaiting_an_mcp_event(session: str | None) -> Callable[[Stream], Awaitable[None]]:
    async def scenario(stream: Stream) -> None:
        await stream.send(_mcp_post(session))
        await stream.send(body(CALL))
        await stream.tell(sse_headers())
        [progress] = _sse({"jsonrpc": "2.0", "method": "notifications/progress",
                           "params": {"progress": 1}})
        await stream.tell(piece(progress))
        await stream.read()
        await stream.read()
    return scenario


READ = {"inspect": {"response": "body"}}
MCP = {"protocol": "mcp", **READ}
# Each phase where tollgate waits on Envoy's next message; the policy and the target's
# settings for it.
PHASES: dict[str, tuple[Callable[[Stream], Awaitable[None]], str, dict[str, Any]]] = {
    "request body": (_awaiting_body, ALLOW_UNLESS, {}),
    "response headers": (_awaiting_response_headers, ALLOW_UNLESS,
                         {"inspect": {"response": "headers"}}),
    "buffered response body": (_awaiting_response_body, ALLOW_UNLESS, READ),
    "streamed response body": (_awaiting_a_streamed_piece, MASK_ALL, READ),
    "MCP event stream": (_awaiting_an_mcp_event(None), MASK_ALL, MCP),
    # A call in a named session: its answer also waits on a refusal aside (another
    # stream of the session may refuse a server request and answer this call).
    "MCP event stream of a session": (_awaiting_an_mcp_event("s-1"), MASK_ALL, MCP),
}


@pytest.mark.parametrize("phase", PHASES)
def test_a_stream_cut_while_tollgate_waits_logs_no_untaken_error(
        phase: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    scenario, policy, target = PHASES[phase]
    assert NEVER_TAKEN not in _played(scenario, monkeypatch, caplog, policy, target)


async def _allowed_get(stream: Stream) -> None:
    await stream.send(get())


async def _allowed_post(stream: Stream) -> None:
    await stream.send(post())
    await stream.send(body({"sql": "SELECT 1"}))


async def _denied_post(stream: Stream) -> None:
    await stream.send(post())
    await stream.send(body({"sql": "DROP TABLE t"}))


LAST_ANSWERS = {"headers-only GET": (_allowed_get, 1), "allowed POST": (_allowed_post, 2),
                "denied POST": (_denied_post, 2)}


@pytest.mark.parametrize("exchange", LAST_ANSWERS)
def test_a_stream_cut_as_its_last_answer_is_taken_logs_no_untaken_error(
        exchange: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The usual end of an exchange through Envoy: the exchange's answers end (their
    last read done) as the reset cancels the handler. That read ended with
    StopAsyncIteration; before 11582a1 nobody took it, once per exchange."""
    scenario, answers = LAST_ANSWERS[exchange]
    logged = _played(scenario, monkeypatch, caplog, ALLOW_UNLESS, {},
                     after_answers=answers, half_close=False)
    assert NEVER_TAKEN not in logged and "StopAsyncIteration" not in logged


# -- an MCP server's error of id null ----------------------------------------------------

PARSE_ERROR = {"code": -32700, "message": "Parse error"}
UNIDENTIFIED = {"jsonrpc": "2.0", "id": None, "error": PARSE_ERROR}
MINE = {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}

def _refused(message: dict[str, Any]) -> bool:
    return "another request's id" in message.get("error", {}).get("message", "")


async def test_an_error_of_id_null_to_the_call_in_flight_is_its_answer() -> None:
    """JSON-RPC 2.0: a server that could not read a request's id answers it with id
    null. On the call's own stream, unanswered yet, that is the call's answer: passed
    with the call's id (what the client matches it by), the error as the server wrote
    it, and named in the record. Refused on the code before the fix ('another request's
    id')."""
    exchange, answers = await streamed(_sse(UNIDENTIFIED))
    [out] = events(answers)
    assert out == {"jsonrpc": "2.0", "id": 7, "error": PARSE_ERROR}
    assert exchange.evidence.meaning["answer"]["unidentified_errors"] == [-32700]
    assert "tollgate.outcome" not in exchange.outcome  # no refusal, no drop


async def test_an_error_of_id_null_in_a_json_answer_is_the_calls_too() -> None:
    pipe = mcp_pipeline(MemoryPins({"read_file": "pinned"}))
    _, answers = await answered(pipe, CALL, ListedResponse(
        {"content-type": "application/json"}, buffered=json.dumps(UNIDENTIFIED).encode()))
    assert json.loads(answers[-1][1]) == {"jsonrpc": "2.0", "id": 7, "error": PARSE_ERROR}


@pytest.mark.parametrize("forged", [
    pytest.param({"jsonrpc": "2.0", "id": None, "result": {"content": []}},
                 id="a result of id null"),
    pytest.param({"jsonrpc": "2.0", "id": None, "error": PARSE_ERROR, "result": {}},
                 id="an error with a result beside it"),
    pytest.param({"jsonrpc": "2.0", "id": None, "error": "Parse error"},
                 id="an error that is no object"),
    pytest.param({"jsonrpc": "2.0", "id": None, "error": {"message": "no code"}},
                 id="an error without a code"),
    pytest.param({"jsonrpc": "2.0", "id": None, "error": {"code": True, "message": "x"}},
                 id="an error whose code is no integer"),
    pytest.param({"jsonrpc": "2.0", "id": 8, "error": PARSE_ERROR},
                 id="an error to another id"),
])
async def test_what_is_no_error_of_id_null_is_still_refused(forged: dict[str, Any]) -> None:
    """A result answers a request the server read, by its id: one of id null is no answer
    to this call. Nor is an id-null message that is no JSON-RPC error."""
    exchange, answers = await streamed(_sse(forged, MINE))
    [out] = events(answers)
    assert out["id"] == 7 and _refused(out)
    assert "unidentified_errors" not in exchange.evidence.meaning["answer"]


@pytest.mark.parametrize("first", [MINE, UNIDENTIFIED], ids=["its result", "an error of id null"])
async def test_an_error_of_id_null_once_the_call_is_answered_is_refused(
        first: dict[str, Any]) -> None:
    """With its call answered no request of the stream is in flight: an error of id null
    then answers nothing, and is refused as any answer to another id."""
    exchange, answers = await streamed(_sse(first, UNIDENTIFIED))
    passed, refused = events(answers)
    assert passed["id"] == 7 and not _refused(passed)
    assert refused["id"] == 7 and _refused(refused)
    assert exchange.evidence.meaning["answer"]["dropped"] == {"an answer to another id": 1}

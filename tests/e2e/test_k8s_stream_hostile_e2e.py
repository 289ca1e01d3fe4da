"""The Kubernetes stream front against a hostile client, end to end: a raw WebSocket
client (not kubectl, which never sends these) through a real Envoy serving TLS to the
front, and the API stand-in running real processes (tests/standins/k8s_standin.py).

The bar (the front's issue): malformed frames, unknown channels, a resize flood, frames
after a close, a client that never reads — each a clear close, a record, and nothing
passed unread. Each test asserts the three: the close frame the client gets (code and
reason), what the pod received per channel (the stand-in's transcript), and the audit
record's outcome. Interactive sessions are driven raw too (stdin bytes on channel 0 of a
v5 terminal): each line that tollgate cannot read as the pod's shell would is refused
and the pod gets none of it.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close

from extproc import config
from extproc.codecs import k8s_channels as ch
from extproc.kube.front import MAX_MESSAGE
from extproc.quickstart import stack
from tests.e2e import test_k8s_streams_e2e as kubectl_e2e
from tests.standins.k8s_exec import Transcript
from tests.standins.k8s_standin import Exec, K8sStandIn
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.tls import TlsFiles
from tests.support.websocket import WebSocket

# The API stand-in, its pods running real processes: the kubectl tests' fixture.
cluster = kubectl_e2e.cluster
CLUSTER_TOKEN = kubectl_e2e.CLUSTER_TOKEN

EXEC = "/api/v1/namespaces/staging/pods/web-1/exec"
AGENT = tokens.token("svc-hostile", ["agents"])
SRE = tokens.token("sam", ["sre"])
# How long the front lets a client leave its output unread here (30 s by default).
CLIENT_READ_SECONDS = 2
PROMPT = b"pod> "
# A terminal's Enter: what kubectl sends for the key (the pod's terminal maps CR to LF).
ENTER = b"\r"
# Kubernetes closes with 1000, the front names what was wrong with the WebSocket's own
# codes: a message it cannot read 1002, a flood or a stalled client 1008.
PROTOCOL_ERROR, POLICY_VIOLATION, TOO_BIG = 1002, 1008, 1009


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver, tls: TlsFiles,
    cluster: K8sStandIn,
) -> Iterator[Gateway]:
    """The gateway of test_k8s_streams_e2e.py, its front patient with a client that
    reads nothing for CLIENT_READ_SECONDS."""
    with module_gateway(tmp_path_factory, otlp, "k8s-hostile",
            targets=[{
                "name": "cluster", "match": {"route": "k8s"}, "protocol": "k8s",
                "environment": "prod",
                "k8s": {"namespace_labels": {"staging": {"environment": "staging"}},
                        "upstream": cluster.url},
                "credential": {"type": "bearer", "from_env": "CLUSTER_TOKEN"},
            }],
            routes=[{"name": "k8s", "match": {"prefix": "/"}, "route": {"cluster": "k8s"},
                     "metadata": {"filter_metadata": {"tollgate": {"protocol": "k8s"}}}}],
            clusters={"k8s": int(cluster.url.rsplit(":", 1)[1])},
            tls=(tls.cert, tls.key), kube={"client_read_seconds": CLIENT_READ_SECONDS},
            env={"CLUSTER_TOKEN": CLUSTER_TOKEN},
    ) as running:
        yield running
        if HUNG:  # a stream the front never ends holds its shutdown for stop()'s 10 s
            running.tollgate.stop(timeout=1)


# Streams a known bug left hanging in the front (test_a_resize_flood_sent_at_once_...):
# tollgate is then stopped without waiting for its graceful shutdown.
HUNG: set[str] = set()


# -- a raw client ------------------------------------------------------------------------


@dataclass
class Stream:
    """One exec stream as a client drives it, message by message (tests/support/websocket.py:
    one thread reads and writes its TLS connection, where websockets' sync client used two,
    which OpenSSL does not allow)."""

    ws: WebSocket
    protocol: ch.Subprotocol
    tag: str
    shown: bytearray = field(default_factory=bytearray)  # stdout and stderr, as read
    status: bytes = b""  # the error channel

    def send(self, channel: int, payload: bytes) -> None:
        self.ws.send(ch.encode(self.protocol, channel, payload))

    def keys(self, *pieces: bytes) -> None:
        """Stdin, one message per piece (as a terminal sends what is typed)."""
        for piece in pieces:
            self.send(ch.STDIN, piece)

    def read_until(self, text: bytes, timeout: float = 10) -> bytes:
        """What stdout and stderr showed up to `text` (the rest stays for the next read)."""
        with _deadline(timeout) as remaining:
            while text not in self.shown:
                self._take(self.ws.recv(timeout=remaining()))
        head, _, rest = bytes(self.shown).partition(text)
        self.shown[:] = rest
        return head + text

    def read_status(self, timeout: float = 10) -> bytes:
        """What the error channel carried once it has: the Status that ends a command."""
        with _deadline(timeout) as remaining:
            while not self.status:
                self._take(self.ws.recv(timeout=remaining()))
        return self.status

    def closed(self, timeout: float = 10) -> tuple[int | None, str]:
        """Everything read until the front's close: its (code, reason), or None when the
        connection ended without one."""
        with _deadline(timeout) as remaining:
            try:
                while True:
                    self._take(self.ws.recv(timeout=remaining()))
            except ConnectionClosed as exc:
                close: Close | None = exc.rcvd
        return (close.code, close.reason) if close is not None else (None, "")

    def _take(self, message: bytes | str) -> None:
        read = ch.decode(self.protocol, message, 5)
        assert isinstance(read, ch.Data), read
        if read.channel == ch.ERROR:
            self.status += read.payload
        else:
            self.shown += read.payload


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[Callable[[], float]]:
    """A callable giving the seconds left (websockets raises TimeoutError past them)."""
    end = time.monotonic() + seconds
    yield lambda: max(0.001, end - time.monotonic())


def exec_path(command: Sequence[str], *, stdin: bool = True, tty: bool = False) -> str:
    """The exec's URL path and query, as kubectl writes them (a terminal: no stderr)."""
    query = urlencode([*(("command", c) for c in command), ("stdin", str(stdin).lower()),
                       ("stdout", "true"), ("stderr", str(not tty).lower()),
                       ("tty", str(tty).lower())])
    return f"{EXEC}?{query}"


def tls_url(gw: Gateway, path: str) -> str:
    """`path` on Envoy's TLS listener (what kubectl connects to)."""
    assert gw.tls_port is not None
    return f"wss://127.0.0.1:{gw.tls_port}{path}"


def new_tag() -> str:
    """A mark in a stream's command by which its pod and its record are found."""
    return f"hostile-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def stream(gw: Gateway, tls: TlsFiles, script: str = "cat", *, stdin: bool = True,
           tty: bool = False, protocol: str = ch.V5,
           headers: Sequence[tuple[str, str]] = (), plain: bool = False
           ) -> Iterator[Stream]:
    """An agent's exec through Envoy (TLS, or its `plain` listener): `sh -c script
    <tag>`, or under `tty` an interactive shell whose prompt is PROMPT."""
    tag = new_tag()
    command = (["env", f"TAG={tag}", f"PS1={PROMPT.decode()}", "sh", "-i"] if tty
               else ["sh", "-c", script, tag])
    path = exec_path(command, stdin=stdin, tty=tty)
    # hang_up: the client ends TCP once the closing handshake is done (RFC 6455 lets either
    # end do it): a client that waits for the server to waits out Envoy's delayed close, a
    # second a stream.
    with WebSocket(f"ws://127.0.0.1:{gw.ports.listener}{path}" if plain else tls_url(gw, path),
                   ca=None if plain else tls.ca, subprotocols=[protocol],
                   headers=[("Authorization", f"Bearer {AGENT}"), *headers], max_size=None,
                   close_timeout=1, hang_up=True) as ws:
        assert ws.subprotocol == protocol
        yield Stream(ws, ch.EXEC_PROTOCOLS[protocol], tag)


def exec_of(cluster: K8sStandIn, tag: str) -> Exec:
    """The pod's side of a stream: what it was asked to run, what it received so far."""
    [found] = [e for e in cluster.execs if tag in e.command or f"TAG={tag}" in e.command]
    return found


def pod_has(cluster: K8sStandIn, tag: str, condition: Callable[[Transcript], bool]) -> None:
    """Until what the pod received so far meets `condition` (what the front passed before
    a hostile message, once passed, is the pod's whatever the front does next)."""
    pod = exec_of(cluster, tag).transcript
    stack.wait_until(lambda: condition(pod), 10, f"the pod of {tag} to receive")


def pod_got(cluster: K8sStandIn, tag: str) -> Transcript:
    """What the pod's process received and did, once its stream is over."""
    return exec_of(cluster, tag).transcript.wait()


def record_of(gw: Gateway, tag: str, seconds: float = 10, *, method: str = "GET",
              ended: bool = True) -> dict[str, Any]:
    """The stream's own record (the exec's GET), once it is written with its end (the
    front's outcome: `ended`)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records() if r["kind"] == "exchange"
                    and r["request"]["method"] == method
                    and any(tag in c for c in r["request"]["query"].get("command", []))
                    and (r["outcome"]["detail"] is not None or not ended)]
        return bool(found)

    stack.wait_until(written, seconds, f"the record of stream {tag}")
    return found[0]


def ended_by_tollgate(gw: Gateway, tag: str, reason: str) -> None:
    """The record says tollgate ended the stream, and why (what the close frame said)."""
    record = record_of(gw, tag)
    assert record["outcome"]["action"] == "allow"
    assert record["outcome"]["detail"] == f"ended by tollgate: {reason}"


def received(transcript: Transcript, channel: int = ch.STDIN) -> bytes:
    """What the pod got on `channel` (stdin unless said)."""
    return bytes(transcript.received.get(channel, b""))


# -- malformed messages --------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "message", "why"), [
    (ch.V5, b"", "empty message"),
    (ch.V4, b"", "empty message"),
    (ch.V5, b"\x05hello", "message for channel 5, which does not exist"),
    (ch.V5, b"\x07", "message for channel 7, which does not exist"),
    (ch.V5, b"\xfe\x00", "message for channel 254, which does not exist"),
    # v4 has no close signal: 255 is a channel like any other, which does not exist.
    (ch.V4, b"\xff\x00", "message for channel 255, which does not exist"),
    (ch.V4_BASE64, "0aGVsbG8", "invalid base64 on channel 0"),
    (ch.V4_BASE64, "0!!!!", "invalid base64 on channel 0"),
    (ch.V4_BASE64, "5aGVsbG8=", "message for channel 5, which does not exist"),
    (ch.V4_BASE64, "/aGVsbG8=", "message for channel -1, which does not exist"),
    (ch.V4_BASE64, "", "empty message"),
], ids=["v5-empty", "v4-empty", "v5-channel-5", "v5-channel-7-no-payload",
        "v5-channel-254", "v4-channel-255", "base64-unpadded", "base64-junk",
        "base64-channel-5", "base64-channel-below-0", "base64-empty"])
def test_a_message_kube_would_drop_ends_the_stream_unpassed(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, protocol: str, message: bytes | str,
    why: str,
) -> None:
    """kube drops these silently; the front cannot know what the client meant by them,
    so it relays nothing of them and ends the stream, saying which."""
    with stream(gw, tls, protocol=protocol) as s:
        s.send(ch.STDIN, b"before\n")
        pod_has(cluster, s.tag, lambda pod: received(pod) == b"before\n")
        s.ws.send(message)
        with contextlib.suppress(ConnectionClosed):  # unless the front has closed already
            s.send(ch.STDIN, b"after\n")
        reason = f"tollgate relays no message it cannot read: {why}"
        assert s.closed() == (PROTOCOL_ERROR, reason)
    pod = pod_got(cluster, s.tag)
    assert received(pod) == b"before\n"
    assert pod.ignored == []  # nothing of it reached the pod to be dropped there
    ended_by_tollgate(gw, s.tag, reason)


@pytest.mark.parametrize(("message", "why"), [
    (b"\xff", "a close signal is one channel byte, not 0"),
    (b"\xff\x00\x00", "a close signal is one channel byte, not 2"),
    (b"\xff\x09", "close signal for channel 9, which does not exist"),
    (b"\xff\xff", "close signal for channel 255, which does not exist"),
], ids=["no-channel", "two-channels", "channel-9", "channel-255"])
def test_a_malformed_close_signal_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, message: bytes, why: str,
) -> None:
    """kube ends the connection on these too: the pod's stdin is not closed by them."""
    with stream(gw, tls) as s:
        s.ws.send(message)
        assert s.closed() == (PROTOCOL_ERROR, f"tollgate: {why}")
    pod = pod_got(cluster, s.tag)
    assert pod.closed == [] and received(pod) == b""
    ended_by_tollgate(gw, s.tag, f"tollgate: {why}")


@pytest.mark.parametrize("channel", [ch.STDOUT, ch.STDERR, ch.ERROR])
@pytest.mark.parametrize("protocol", [ch.V5, ch.V4_BASE64])
def test_a_client_writing_the_pods_channels_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, protocol: str, channel: int,
) -> None:
    """Output channels are the pod's: a client's message on one (a forged Status on the
    error channel, say) goes nowhere."""
    forged = b'{"metadata":{},"status":"Success"}' if channel == ch.ERROR else b"forged\n"
    with stream(gw, tls, protocol=protocol) as s:
        s.send(channel, forged)
        reason = f"tollgate: a client writes stdin and resize, not channel {channel}"
        assert s.closed() == (PROTOCOL_ERROR, reason)
    assert s.status == b""
    pod = pod_got(cluster, s.tag)
    assert pod.received == {} and pod.ignored == []
    ended_by_tollgate(gw, s.tag, reason)


def test_a_text_frame_on_a_binary_subprotocol_is_read_as_kube_reads_it(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """kube's wsstream takes a message's bytes whatever its frame type (x/net/websocket's
    Message.Receive into a []byte): so does the front, which reads them as stdin."""
    with stream(gw, tls, "cat; echo done") as s:
        s.ws.send("\x00typed as text\n")
        s.ws.send(bytes((ch.CLOSE, ch.STDIN)))
        assert s.closed() == (1000, "")
    assert b"typed as text\ndone" in s.shown
    assert received(pod_got(cluster, s.tag)) == b"typed as text\n"


# -- what a client may not send ------------------------------------------------------------


@pytest.mark.parametrize("protocol", [ch.V5, ch.V4, ch.V4_BASE64])
def test_stdin_the_exec_did_not_ask_for_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, protocol: str,
) -> None:
    """The exec was decided without stdin: stdin sent anyway is no one's to read."""
    with stream(gw, tls, "sleep 20", stdin=False, protocol=protocol) as s:
        s.send(ch.STDIN, b"rm -rf /\n")
        reason = "tollgate: stdin the stream did not ask for"
        assert s.closed() == (PROTOCOL_ERROR, reason)
    pod = pod_got(cluster, s.tag)
    assert pod.received == {} and pod.exit_code != 0  # killed: its stream ended
    ended_by_tollgate(gw, s.tag, reason)


@pytest.mark.parametrize(("after", "reason"), [
    (b"\x00more\n", "tollgate: stdin after the client closed it"),
    (b"\xff\x00", "tollgate: a close of channel 0 twice"),
], ids=["stdin-after-close", "close-twice"])
def test_after_its_close_signal_a_client_sends_nothing_more(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, after: bytes, reason: str,
) -> None:
    """v5's close signal ends stdin: kube drops what comes after; the front ends the
    stream (the pod's command, still running, is not fed)."""
    with stream(gw, tls, "cat; sleep 20") as s:
        s.send(ch.STDIN, b"first\n")
        s.ws.send(bytes((ch.CLOSE, ch.STDIN)))
        pod_has(cluster, s.tag, lambda pod: pod.closed == [ch.STDIN])
        s.ws.send(after)
        assert s.closed() == (PROTOCOL_ERROR, reason)
    pod = pod_got(cluster, s.tag)
    assert received(pod) == b"first\n" and pod.closed == [ch.STDIN] and pod.ignored == []
    ended_by_tollgate(gw, s.tag, reason)


@pytest.mark.parametrize("channel", [ch.STDOUT, ch.STDERR, ch.ERROR, ch.RESIZE])
def test_a_close_signal_for_another_channel_than_stdin_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, channel: int,
) -> None:
    """A client closes only what it writes: stdin."""
    with stream(gw, tls) as s:
        s.ws.send(bytes((ch.CLOSE, channel)))
        assert s.closed() == (PROTOCOL_ERROR, f"tollgate: a close of channel {channel}")
    assert pod_got(cluster, s.tag).closed == []
    ended_by_tollgate(gw, s.tag, f"tollgate: a close of channel {channel}")


# -- resizes ----------------------------------------------------------------------------------

SIZE = b'{"Width":100,"Height":30}'
RESIZE_BURST = 20  # what the front lets through at once beyond resizes_per_second (10)
FLOOD = "tollgate: more than 10 resizes a second"


def test_resizes_past_the_rate_end_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """Each resize waits for the last to reach the pod, so the front is idle when the
    one past the rate comes (test_a_resize_flood_sent_at_once_ends_the_stream sends
    them at once)."""
    with stream(gw, tls) as s:
        for sent in range(1, 10 * RESIZE_BURST):
            try:
                s.send(ch.RESIZE, SIZE)
            except ConnectionClosed:
                break
            pod_has(cluster, s.tag, lambda pod: len(pod.resizes) >= sent  # noqa: B023
                    or s.ws.close_received())
        assert s.closed() == (POLICY_VIOLATION, FLOOD)
    assert RESIZE_BURST <= len(pod_got(cluster, s.tag).resizes) < sent
    ended_by_tollgate(gw, s.tag, FLOOD)


def test_a_resize_flood_sent_at_once_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """Sixty resizes at once, on four streams at once: each ends with the flood's close
    (one stream hung is the bug; four make missing its race unlikely)."""
    with contextlib.ExitStack() as opened:
        floods = [opened.enter_context(stream(gw, tls)) for _ in range(4)]
        for s in floods:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(3 * RESIZE_BURST):
                    s.send(ch.RESIZE, SIZE)
        with _deadline(2) as remaining:
            for s in floods:
                try:
                    assert s.closed(remaining()) == (POLICY_VIOLATION, FLOOD)
                except TimeoutError:
                    HUNG.add(s.tag)
                    s.ws.socket.shutdown(socket.SHUT_RDWR)  # no closing handshake
    hung = [s.tag for s in floods if s.tag in HUNG]
    for s in floods:
        if s.tag not in hung:
            assert len(pod_got(cluster, s.tag).resizes) <= RESIZE_BURST + 1
            ended_by_tollgate(gw, s.tag, FLOOD)
    assert not hung, f"{len(hung)} of 4 floods got no close in 2 s"


def test_a_burst_of_resizes_within_the_limit_passes(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """A terminal dragged to a new size sends a burst: it passes whole."""
    with stream(gw, tls) as s:
        for width in range(RESIZE_BURST):
            s.send(ch.RESIZE, b'{"Width":%d,"Height":30}' % (80 + width))
        s.ws.send(bytes((ch.CLOSE, ch.STDIN)))
        assert s.closed() == (1000, "")
    assert pod_got(cluster, s.tag).resizes == [(80 + w, 30) for w in range(RESIZE_BURST)]


def test_a_flood_in_one_resize_message_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    with stream(gw, tls) as s:
        s.send(ch.RESIZE, SIZE * 100)
        with contextlib.suppress(ConnectionClosed):
            s.ws.send(bytes((ch.CLOSE, ch.STDIN)))
        closed = s.closed()
    passed = len(pod_got(cluster, s.tag).resizes)
    assert closed == (POLICY_VIOLATION, FLOOD) and passed <= RESIZE_BURST, (
        f"closed {closed}; {passed} resizes reached the pod")


@pytest.mark.parametrize(("junk", "why"), [
    (b"not json", "resize channel: not JSON: 'not json'"),
    (b"[100, 30]", "resize channel: not a TerminalSize object"),
    (b'"wide"', "resize channel: not a TerminalSize object"),
    (b'{"Width":"wide","Height":30}', "resize channel: Width is not a size: 'wide'"),
    (b"{" + b" " * 5000, "resize channel: not JSON: '{" + " " * 39 + "'"),
    (b'{"Width":100,"Height":30}}', "resize channel: not JSON: '}'"),
    (b'{"Width":\xff}', "'utf-8' codec can't decode byte 0xff in position 9: invalid "
                       "start byte"),
], ids=["text", "array", "string", "string-width", "endless-object", "stray-brace",
        "not-utf8"])
def test_junk_on_the_resize_channel_ends_the_stream(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, junk: bytes, why: str,
) -> None:
    with stream(gw, tls) as s:
        s.send(ch.RESIZE, junk)
        assert s.closed() == (PROTOCOL_ERROR, f"tollgate: {why}")
    pod = pod_got(cluster, s.tag)
    assert ch.RESIZE not in pod.received and pod.ignored == []
    ended_by_tollgate(gw, s.tag, f"tollgate: {why}")


@pytest.mark.parametrize("junk", [
    b'{"Width":null,"Height":30}', b'{"Width":[100],"Height":30}',
    b'{"Width":1e400,"Height":30}', b"[" * 100_000, b'{"a":' * 100_000,
], ids=["null", "list", "infinite", "deep-array", "deep-object"])
def test_junk_sizes_end_the_stream_as_other_junk_does(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, junk: bytes,
) -> None:
    with stream(gw, tls) as s:
        s.send(ch.RESIZE, junk)
        code, reason = s.closed()
    assert ch.RESIZE not in pod_got(cluster, s.tag).received  # this holds already
    detail = record_of(gw, s.tag)["outcome"]["detail"]
    assert (code == PROTOCOL_ERROR and reason.startswith("tollgate: ")
            and detail.startswith("ended by tollgate: ")), (
        f"closed ({code}, {reason!r}), recorded {detail!r}")


def test_a_size_split_over_messages_is_one_resize(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """kube reads the resize channel as a stream of JSON: an object may span messages,
    and so it may through the front."""
    with stream(gw, tls) as s:
        s.send(ch.RESIZE, b'{"Width":1')
        s.send(ch.RESIZE, b'20,"Height":')
        s.send(ch.RESIZE, b"40}")
        s.ws.send(bytes((ch.CLOSE, ch.STDIN)))
        assert s.closed() == (1000, "")
    assert pod_got(cluster, s.tag).resizes == [(120, 40)]


# -- size and pace ------------------------------------------------------------------------------


@pytest.mark.parametrize("fragments", [1, 33], ids=["one-frame", "fragmented"])
def test_a_message_past_the_fronts_limit_ends_the_stream_unpassed(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, fragments: int,
) -> None:
    """32 MiB is the largest message (kube's own limit); one byte more, in one frame or
    in fragments, is not read, and none of it reaches the pod."""
    message = b"\x00" + b"x" * MAX_MESSAGE
    size = -(-len(message) // fragments)
    with stream(gw, tls, "cat > /dev/null") as s:
        with contextlib.suppress(ConnectionClosed, OSError):  # closed as it sends
            s.ws.send(message if fragments == 1 else
                      (message[i:i + size] for i in range(0, len(message), size)))
        code, reason = s.closed()
    # The close frame, or none: the front half-closes as it refuses the message, and
    # Envoy then resets the client's connection, which is still sending, at times before
    # the client has read the close frame.
    assert code in (TOO_BIG, None), (code, reason)
    assert pod_got(cluster, s.tag).received_bytes[ch.STDIN] == 0
    detail = record_of(gw, s.tag)["outcome"]["detail"]
    assert detail.startswith("ended by tollgate: "), f"recorded {detail!r}"


def test_a_client_that_never_reads_is_ended_after_client_read_seconds(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """The pod writes 50 MB; the client reads none of it. The pod is paced to the client
    (the front holds at most its buffers' worth) and after client_read_seconds (2 s
    here) the stream is ended and recorded, whether or not the client ever reads again."""
    reason = f"tollgate: the client read nothing for {CLIENT_READ_SECONDS} s"
    with stream(gw, tls, "head -c 50000000 /dev/zero", stdin=False) as s:
        # The client reads nothing while this waits, so a busy machine's slower record
        # (once missed a 6 s deadline under the whole suite on two cores) waits longer.
        ended = written_within(gw, s.tag, CLIENT_READ_SECONDS + 30)
        # Now the client reads: what was sent before the close, then the close (or, from
        # a front that gave up on it, none).
        assert s.closed() in ((POLICY_VIOLATION, reason), (None, ""))
    # The pod's output went over the stream no faster than the client read it (the
    # stand-in itself buffers what its process writes: the process is not paced).
    assert exec_of(cluster, s.tag).transcript.sent_bytes[ch.STDOUT] < 50_000_000
    assert ended, "the stream was ended only once the client read again"


def written_within(gw: Gateway, tag: str, seconds: float) -> bool:
    """Whether the stream's record is written within `seconds`."""
    try:
        record_of(gw, tag, seconds)
    except stack.StackError:
        return False
    return True


@pytest.mark.parametrize("how", ["close-frame", "tcp-cut"])
def test_a_client_that_leaves_mid_command_takes_the_command_with_it(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, how: str,
) -> None:
    """Closing cleanly or cutting TCP, the client's leaving ends the stream upstream
    (the stand-in then kills the command) and the record says who ended it."""
    with stream(gw, tls, "echo started; exec sleep 30", stdin=False) as s:
        pod_has(cluster, s.tag, lambda pod: "started" in pod.text(ch.STDOUT))
        if how == "close-frame":
            s.ws.close()
        else:
            s.ws.socket.shutdown(socket.SHUT_RDWR)
    assert pod_got(cluster, s.tag).exit_code not in (None, 0)
    assert record_of(gw, s.tag)["outcome"]["detail"] == "the client left"


# -- who may open a stream, and through which door ---------------------------------------------


def foreign_token() -> str:
    """An agent's claims signed by a key the gateway does not know (under a kid it does)."""
    key = ec.generate_private_key(ec.SECP256R1())
    claims = jwt.decode(AGENT, options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "test-ec"})


def unsigned_token() -> str:
    """An agent's claims, signed with algorithm `none`."""
    claims = jwt.decode(AGENT, options={"verify_signature": False})
    return jwt.encode(claims, key="", algorithm="none")


def refused_upgrade(url: str, headers: Sequence[tuple[str, str]],
                    tls: TlsFiles | None = None) -> tuple[int, dict[str, Any]]:
    """The HTTP answer to an upgrade that is refused: its status and JSON body."""
    with pytest.raises(InvalidStatus) as refused, WebSocket(
            url, ca=tls.ca if tls else None, subprotocols=[ch.V5], headers=headers):
        pass
    response = refused.value.response
    return response.status_code, json.loads(response.body)


LATE = tokens.token("svc-late", ttl=-60)
BAD_TOKENS = {
    "none": None, "empty": "Bearer", "garbage": "Bearer not-a-token",
    "basic": "Basic YWdlbnQ6c2VjcmV0", "expired": f"Bearer {LATE}",
    "audience": f"Bearer {tokens.token('svc-elsewhere', aud='another-audience')}",
    "issuer": f"Bearer {tokens.token('svc-other-issuer', iss='https://evil.test')}",
    "alg-none": f"Bearer {unsigned_token()}", "foreign-key": f"Bearer {foreign_token()}",
}


@pytest.mark.parametrize("authorization", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_stream_without_a_verified_token_is_refused_before_the_pod(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, authorization: str | None,
) -> None:
    """Envoy's jwt_authn is off on the stream route: the front verifies the token as
    Envoy would, and refuses the upgrade with a Status kubectl prints."""
    tag = new_tag()
    status, body = refused_upgrade(
        tls_url(gw, exec_path(["sh", "-c", "cat", tag])),
        [("Authorization", authorization)] if authorization is not None else [], tls)
    assert status == 401
    assert (body["kind"], body["code"], body["reason"]) == ("Status", 401, "Unauthorized")
    assert "the token does not verify: " in body["message"]
    assert not any(tag in e.command for e in cluster.execs)
    record = record_of(gw, tag)
    assert record["outcome"]["detail"].startswith("the token does not verify: ")
    assert record["identity"] is None or not record["identity"]["authenticated"]


@pytest.mark.parametrize(("authorization", "why"), [
    (None, "no bearer token in Authorization"),
    (f"Bearer {LATE}", r"it expired at \S+ \S+ UTC \(\d+ s ago\)"),
], ids=["none", "expired"])
def test_a_refused_upgrade_says_why_once(
    gw: Gateway, tls: TlsFiles, authorization: str | None, why: str,
) -> None:
    _, body = refused_upgrade(
        tls_url(gw, exec_path(["sh", "-c", "cat"])),
        [("Authorization", authorization)] if authorization is not None else [], tls)
    said = f"tollgate refused: the token does not verify: {why} \\(trace {body['trace_id']}\\)"
    assert re.fullmatch(said, body["message"]), body["message"]


@pytest.mark.parametrize(("plain", "forged"), [
    (False, [("x-tollgate-route", "nope")]), (False, [("x-tollgate-route", "")]),
    (False, [("x-tollgate-route", "nope"), ("X-Tollgate-Route", "k8s-admin")]),
    (True, [("x-tollgate-route", "nope")]),
], ids=["unknown", "empty", "twice", "plain-listener"])
def test_envoy_replaces_the_route_header_a_client_forges(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, plain: bool,
    forged: list[tuple[str, str]],
) -> None:
    """The front finds the target by the header Envoy's stream route sets: what the
    client sent in its name never reaches the front."""
    with stream(gw, tls, headers=forged, plain=plain) as s:
        s.send(ch.STDIN, b"routed\n")
        s.ws.send(bytes((ch.CLOSE, ch.STDIN)))
        assert s.closed() == (1000, "")
    assert b"routed\n" in s.shown
    assert received(pod_got(cluster, s.tag)) == b"routed\n"
    record = record_of(gw, s.tag)
    assert record["request"]["headers"]["x-tollgate-route"] == "k8s"
    assert record["target"]["name"] == "cluster"


def front_port(gw: Gateway) -> int:
    """The Kubernetes front's own port (its first worker's), behind Envoy."""
    front = config.load(gw.config_path).kube
    assert front is not None
    return front.address_of(0)[1]


@pytest.mark.parametrize(("headers", "status", "why"), [
    ([("x-tollgate-route", "k8s")], 401, "the token does not verify: "),
    ([("x-tollgate-route", "k8s"), ("Authorization", "Bearer forged")], 401,
     "the token does not verify: "),
    ([("x-tollgate-route", "nope"), ("Authorization", f"Bearer {AGENT}")], 404,
     "no k8s target serves route 'nope'"),
    ([("Authorization", f"Bearer {AGENT}")], 404, "no k8s target serves route ''"),
], ids=["no-token", "forged-token", "unknown-route", "no-route"])
def test_a_client_that_bypasses_envoy_gets_no_more(
    gw: Gateway, cluster: K8sStandIn, headers: list[tuple[str, str]], status: int,
    why: str,
) -> None:
    """The front's port is Envoy's upstream, but it trusts Envoy for nothing but the
    route's name: a token is still verified, and a route it does not serve is refused."""
    tag = new_tag()
    got, body = refused_upgrade(
        f"ws://127.0.0.1:{front_port(gw)}{exec_path(['sh', '-c', 'cat', tag])}", headers)
    assert (got, body["code"]) == (status, status)
    assert f"tollgate refused: {why}" in body["message"]
    assert not any(tag in e.command for e in cluster.execs)
    assert record_of(gw, tag)["outcome"]["detail"].startswith(why)


@pytest.mark.parametrize("token", [AGENT, SRE], ids=["agent", "sre"])
def test_a_spdy_upgrade_is_refused_by_ext_proc(
    gw: Gateway, cluster: K8sStandIn, token: str,
) -> None:
    """SPDY (kubectl's fallback) takes the k8s route, not the stream route: ext_proc
    decides it and refuses it, saying that streams are read over WebSocket only."""
    tag = new_tag()
    reply = gw.request("POST", exec_path(["sh", "-c", "cat", tag]), token=token, headers={
        "Upgrade": "SPDY/3.1", "Connection": "Upgrade",
        "X-Stream-Protocol-Version": "v4.channel.k8s.io"})
    assert reply.status == 403, reply.body
    status = reply.json()
    assert (status["kind"], status["code"]) == ("Status", 403)
    assert "a Kubernetes stream is read only over WebSocket, through tollgate's " \
           "Kubernetes front" in status["message"]
    assert not any(tag in e.command for e in cluster.execs)
    record = record_of(gw, tag, method="POST", ended=False)
    assert (record["outcome"]["action"], record["outcome"]["status"]) == ("deny", 403)


# -- an interactive session driven raw -------------------------------------------------------


def session_lines(gw: Gateway, tag: str, count: int) -> list[dict[str, Any]]:
    """The LINE records of the session whose stream carries `tag`, once `count` are."""
    session = record_of(gw, tag)["session_id"]
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records() if r["kind"] == "exchange"
                    and r["request"]["method"] == "LINE" and r["session_id"] == session]
        return len(found) >= count

    stack.wait_until(written, 10, f"{count} lines of session {session}")
    return found


def typed(record: dict[str, Any]) -> tuple[str, str]:
    """A LINE record's line, and what was decided of it."""
    return record["meaning"]["k8s"]["exec"]["line"], record["outcome"]["action"]


AFTER = b"echo after-$((6*7))"


@pytest.mark.parametrize(("keys", "why"), [
    ([b"echo left\x1b[Dx\r"], "an escape sequence"),
    ([b"\x1b[200~echo pasted\x1b[201~\r"], "an escape sequence"),
    ([b"echo \x1bb\r"], "an escape sequence"),
    ([b"echo \x16\x07bell\r"], "Ctrl-V"),
    ([b"echo a\x00b\r"], "Ctrl-@"),
    ([b"ec\t\r"], "Tab (completion)"),
    ([b"echo caf\xc3\xa9\r"], "a byte past ASCII"),
    ([b"echo " + b"x" * 100_000 + b"\r"], "longer than 65536 characters"),
    ([b"echo 'open\r"], "the shell would read on past its end"),
    ([bytes([c]) for c in b"rm -rf /\r"], "destructive command"),
], ids=["arrow-key", "bracketed-paste", "alt-key", "ctrl-v", "nul", "tab", "utf8",
        "100kb-line", "open-quote", "rm-one-byte-a-message"])
def test_a_line_tollgate_cannot_read_never_reaches_the_pod(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, keys: list[bytes], why: str,
) -> None:
    """Each key goes to the front's line editor, not the pod: a line it cannot read as
    the pod's shell would is refused whole, and the shell never sees a byte of it."""
    with stream(gw, tls, tty=True) as s:
        s.read_until(PROMPT)
        s.keys(*keys)
        refusal = s.read_until(b"]")
        assert b"tollgate: refused: " in refusal and why.encode() in refusal, refusal
        s.keys(AFTER + ENTER)
        assert b"after-42" in s.read_until(PROMPT)
        s.keys(b"exit" + ENTER)
        assert s.closed() == (1000, "")
    assert received(pod_got(cluster, s.tag)) == AFTER + ENTER + b"exit" + ENTER
    lines = session_lines(gw, s.tag, 3)
    assert [action for _, action in map(typed, lines)] == ["deny", "allow", "allow"]


def test_a_line_split_over_many_messages_reaches_the_pod_whole(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """One key a message: nothing reaches the pod before Enter, then the line whole."""
    with stream(gw, tls, tty=True) as s:
        s.read_until(PROMPT)
        line = b"echo split-$((2*3))"
        s.keys(*(bytes([c]) for c in line))
        s.read_until(line)  # the front's echo of the keys
        assert received(exec_of(cluster, s.tag).transcript) == b""
        s.keys(ENTER)
        assert b"split-6" in s.read_until(PROMPT)
        s.keys(b"exit" + ENTER)
        assert s.closed() == (1000, "")
    assert received(pod_got(cluster, s.tag)) == line + ENTER + b"exit" + ENTER


def test_cr_and_lf_each_end_a_line(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """A terminal's line discipline takes CR and LF for Enter: so does the front, and
    each line is decided alone (an LF cannot smuggle a second command into a line)."""
    with stream(gw, tls, tty=True) as s:
        s.read_until(PROMPT)
        s.keys(b"echo one\nrm -rf /\r\necho two\r")
        assert b"destructive command" in s.read_until(b"]")
        assert b"two" in s.read_until(b"two\r\n")
        s.keys(b"exit" + ENTER)
        assert s.closed() == (1000, "")
    assert received(pod_got(cluster, s.tag)) == b"echo one\r\recho two\rexit\r"
    lines = session_lines(gw, s.tag, 4)
    assert list(map(typed, lines)) == [("echo one", "allow"), ("rm -rf /", "deny"),
                                       ("echo two", "allow"), ("exit", "allow")]


def test_keys_erased_before_enter_never_reach_the_pod(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """A line erased (Ctrl-U) or discarded (Ctrl-C), unreadable keys and all, was never
    the pod's: only the line entered after them is."""
    with stream(gw, tls, tty=True) as s:
        s.read_until(PROMPT)
        s.keys(b"rm -rf /\x15", b"echo \x1b[A\x03", AFTER + ENTER)
        assert b"after-42" in s.read_until(PROMPT)
        s.keys(b"exit" + ENTER)
        assert s.closed() == (1000, "")
    assert received(pod_got(cluster, s.tag)) == AFTER + ENTER + b"exit" + ENTER


def test_a_line_sent_after_the_shell_exited_goes_nowhere(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
) -> None:
    """What a client types once the pod's shell has exited (its Status said so) reaches
    no pod: the front has closed the stream upstream before it passes the Status on."""
    with stream(gw, tls, tty=True) as s:
        s.read_until(PROMPT)
        s.keys(b"exit 3" + ENTER)
        status = json.loads(s.read_status())
        with contextlib.suppress(ConnectionClosed):
            s.keys(b"echo late" + ENTER)
        assert s.closed() == (1000, "")
    pod = pod_got(cluster, s.tag)
    assert received(pod) == b"exit 3" + ENTER and pod.exit_code == 3
    assert status["details"]["causes"][0]["message"] == "3"
    assert record_of(gw, s.tag)["outcome"]["detail"] == "closed"

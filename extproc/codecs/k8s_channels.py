"""The channel framing of Kubernetes' WebSocket streaming subprotocols (exec, attach,
port-forward), as kube-apiserver and the kubelet speak them; pure functions, no I/O.

Every WebSocket message carries one channel: its first byte is the channel number (binary
subprotocols), or that number as an ASCII digit followed by the payload in base64 (the
`base64.` subprotocols, text messages). Exec and attach use 0 stdin, 1 stdout, 2 stderr,
3 the error channel (a metav1.Status when the command ends), 4 resize (JSON
`{"Width": w, "Height": h}`); v5 adds the close signal, `255 <channel>`: the client has
finished sending on that channel (stdin EOF). Port-forward uses a pair per requested port,
2i data and 2i+1 error, each opened by the port as two little-endian bytes.

Who negotiates what (learnt from k8s.io/streaming wsstream/conn.go, apiserver
util/proxy/websocket.go, kubelet cri/streaming remotecommand/websocket.go and
portforward/websocket.go):
- an exec/attach offer holding v5.channel.k8s.io goes to kube-apiserver's stream
  translator, which serves v5 only, whatever else was offered (kubectl offers v5 alone;
  the `kubernetes` Python client offers v5, then v4);
- any other exec/attach offer is proxied to the kubelet, which takes the first protocol
  the client lists among channel.k8s.io, base64.channel.k8s.io, v4.channel.k8s.io and
  v4.base64.channel.k8s.io, and "" (binary, v1 status) when none is offered;
- port-forward always reaches the kubelet: "", v4.channel.k8s.io, v4.base64.channel.k8s.io.

Where kube ignores a frame (empty message, unknown channel, a channel not opened, bad
base64, data after the client closed the channel), `decode` says so (`Ignored`); where
kube ends the connection (a malformed close signal), it raises ProtocolError. Two readers
share it: tollgate's Kubernetes stream front (extproc/kube/), which ends the stream on
anything kube would ignore (it passes nothing it did not read), and the tests' API
stand-in, which ignores it as kube does and says so in its transcript.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)
CLOSE = 255  # v5: "the client closed channel <next byte>"
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"


@dataclass(frozen=True)
class Subprotocol:
    """One negotiated subprotocol and what it changes."""

    name: str  # "" when the client offered none (kubelet's default: binary, v1)
    base64: bool  # text messages, digit + base64 payload
    status_json: bool  # v4+: a metav1.Status on channel 3; before: the message, failures only
    close_signal: bool  # v5: channel 255 half-closes a stream
    server: str  # "apiserver" (v5 stream translator) or "kubelet"


def _protocol(name: str, *, b64: bool = False, v4: bool = True) -> Subprotocol:
    return Subprotocol(name, b64, v4, name == V5, "apiserver" if name == V5 else "kubelet")


EXEC_PROTOCOLS: Mapping[str, Subprotocol] = {p.name: p for p in (
    _protocol(V5), _protocol(V4), _protocol(V4_BASE64, b64=True),
    _protocol(V1, v4=False), _protocol(V1_BASE64, b64=True, v4=False), _protocol("", v4=False),
)}
PORT_FORWARD_PROTOCOLS: Mapping[str, Subprotocol] = {p.name: p for p in (
    _protocol(V4), _protocol(V4_BASE64, b64=True), _protocol(""),
)}


def offered(header: str) -> list[str]:
    """The subprotocols a Sec-WebSocket-Protocol header lists, in the client's order."""
    return [p.strip() for p in header.split(",") if p.strip()]


def negotiate(
    offer: Sequence[str], supported: Mapping[str, Subprotocol]
) -> Subprotocol | None:
    """The subprotocol kube picks for `offer`, or None (kube answers the upgrade 403)."""
    if not offer:
        return supported.get("")
    if V5 in offer and V5 in supported:  # the API server's translator takes it
        return supported[V5]
    return next((supported[p] for p in offer if p and p in supported), None)


@dataclass(frozen=True)
class Data:
    channel: int
    payload: bytes


@dataclass(frozen=True)
class Closed:
    """v5's close signal: the client sends nothing more on `channel`."""

    channel: int


@dataclass(frozen=True)
class Ignored:
    """A message kube drops without ending the connection; `why` for the transcript."""

    why: str


class ProtocolError(ValueError):
    """A message after which kube ends the connection."""


Message = Data | Closed | Ignored


def decode(protocol: Subprotocol, message: bytes | str, channels: int) -> Message:
    """One client message read as kube's wsstream reads it; `channels` is how many the
    session has (5 for exec/attach, 2 per port for port-forward)."""
    raw = message.encode() if isinstance(message, str) else message
    if not raw:
        return Ignored("empty message")
    if protocol.close_signal and raw[0] == CLOSE:
        if len(raw) != 2:
            raise ProtocolError(f"a close signal is one channel byte, not {len(raw) - 1}")
        if raw[1] >= channels:
            raise ProtocolError(f"close signal for channel {raw[1]}, which does not exist")
        return Closed(raw[1])
    channel = raw[0] - ord("0") if protocol.base64 else raw[0]
    if not 0 <= channel < channels:
        return Ignored(f"message for channel {channel}, which does not exist")
    payload = raw[1:]
    if protocol.base64:
        try:
            payload = base64.b64decode(payload, validate=True)
        except binascii.Error:
            return Ignored(f"invalid base64 on channel {channel}")
    return Data(channel, payload)


def encode(protocol: Subprotocol, channel: int, payload: bytes) -> bytes | str:
    """One server message: bytes for a binary frame, str for a text frame."""
    if protocol.base64:
        return chr(ord("0") + channel) + base64.b64encode(payload).decode()
    return bytes((channel,)) + payload


# -- what goes on the error channel (3) -------------------------------------------------


def success(protocol: Subprotocol) -> bytes | None:
    """The end of a command that exited 0 (pre-v4 subprotocols send nothing)."""
    return _status(protocol, {"metadata": {}, "status": "Success"})


def exited(protocol: Subprotocol, argv: Sequence[str], code: int) -> bytes | None:
    """A non-zero exit as each path words it: the kubelet relays containerd's
    CodeExitError; the API server's translator re-wraps what client-go decoded of it."""
    if protocol.server == "apiserver":
        inner = f"command terminated with exit code {code}"
    else:
        inner = f"error executing command [{' '.join(argv)}], exit code {code}"
    return _status(protocol, {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: {inner}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    })


def internal_error(protocol: Subprotocol, cause: str) -> bytes | None:
    """A command that could not start (apierrors.NewInternalError; the translator wraps
    the kubelet's once more)."""
    message = f"error executing command in container: {cause}"
    layers = 2 if protocol.server == "apiserver" else 1
    for _ in range(layers):
        details = {"causes": [{"message": message}]}
        message = f"Internal error occurred: {message}"
    return _status(protocol, {"metadata": {}, "status": "Failure", "message": message,
                              "reason": "InternalError", "details": details, "code": 500})


def refused(protocol: Subprotocol, message: str) -> bytes:
    """A command that ran but did not do all it was asked, by tollgate's refusal: the
    exit status its client reports (kubectl exits 1 with the message)."""
    status = {"metadata": {}, "status": "Failure", "message": message,
              "reason": "Forbidden", "code": 403}
    return _status(protocol, status) or message.encode()


def _status(protocol: Subprotocol, status: dict[str, Any]) -> bytes | None:
    if protocol.status_json:
        return json.dumps(status, separators=(",", ":")).encode()
    return None if status["status"] == "Success" else status["message"].encode()


class ResizeReader:
    """Terminal sizes from the resize channel, a stream of JSON objects (kube reads it
    with a json.Decoder, so an object may span messages or share one)."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, payload: bytes) -> list[tuple[int, int]]:
        """(width, height) of each object completed by `payload`; ValueError on junk
        (what is no JSON, no TerminalSize, or a size past kube's uint16)."""
        self._pending += payload.decode()
        sizes = []
        decoder = json.JSONDecoder()
        while text := self._pending.lstrip():
            try:
                size, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                if not text.startswith("{") or len(text) > 4096:
                    raise ValueError(f"resize channel: not JSON: {text[:40]!r}") from None
                break  # an object cut short: the rest comes in the next message
            except RecursionError:
                raise ValueError("resize channel: JSON nested too deep") from None
            self._pending = text[end:]
            if not isinstance(size, dict):
                raise ValueError("resize channel: not a TerminalSize object")
            sizes.append((_dimension(size, "Width"), _dimension(size, "Height")))
        return sizes


def _dimension(size: dict[str, Any], key: str) -> int:
    """One side of a TerminalSize: an integer 0-65535 (kube's uint16), else ValueError."""
    value = size.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"resize channel: {key} is not a size: {str(value)[:40]!r}")
    return value

"""The Kubernetes channel framing (extproc/codecs/k8s_channels.py): negotiation as kube
does it, messages that round-trip, and what is ignored or ends a connection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.codecs import k8s_channels as ch

EXEC = ch.EXEC_PROTOCOLS
PROTOCOLS = st.sampled_from(sorted(EXEC.values(), key=lambda p: p.name))


@pytest.mark.parametrize(("offer", "chosen"), [
    (["v5.channel.k8s.io"], "v5.channel.k8s.io"),  # kubectl
    (["v5.channel.k8s.io", "v4.channel.k8s.io"], "v5.channel.k8s.io"),  # Python client
    (["v4.channel.k8s.io", "v5.channel.k8s.io"], "v5.channel.k8s.io"),  # the translator wins
    (["channel.k8s.io", "v4.channel.k8s.io"], "channel.k8s.io"),  # kubelet: client's order
    (["x.k8s.io", "v4.base64.channel.k8s.io"], "v4.base64.channel.k8s.io"),
    ([], ""),
])
def test_exec_negotiation_follows_kube(offer: list[str], chosen: str) -> None:
    negotiated = ch.negotiate(offer, EXEC)
    assert negotiated is not None and negotiated.name == chosen


def test_port_forward_never_negotiates_v5_and_unknown_offers_fail() -> None:
    forward = ch.negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"],
                           ch.PORT_FORWARD_PROTOCOLS)
    assert forward is not None and forward.name == "v4.channel.k8s.io"
    assert ch.negotiate(["v5.channel.k8s.io"], ch.PORT_FORWARD_PROTOCOLS) is None
    assert ch.negotiate(["v9.channel.k8s.io"], EXEC) is None


def test_offered_reads_a_header_in_order() -> None:
    assert ch.offered(" v5.channel.k8s.io , v4.channel.k8s.io,") == [
        "v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert ch.offered("") == []


@given(PROTOCOLS, st.integers(0, 4), st.binary(max_size=300))
def test_a_message_round_trips(protocol: ch.Subprotocol, channel: int, payload: bytes) -> None:
    assert ch.decode(protocol, ch.encode(protocol, channel, payload), 5) == ch.Data(
        channel, payload)


@given(PROTOCOLS, st.integers(5, 9), st.binary(max_size=20))
def test_a_channel_past_the_sessions_is_ignored(
    protocol: ch.Subprotocol, channel: int, payload: bytes
) -> None:
    assert isinstance(ch.decode(protocol, ch.encode(protocol, channel, payload), 5),
                      ch.Ignored)


def test_text_frames_carry_base64_and_binary_frames_a_channel_byte() -> None:
    assert ch.encode(EXEC["v4.base64.channel.k8s.io"], 1, b"hi\n") == "1aGkK"
    assert ch.encode(EXEC["v4.channel.k8s.io"], 1, b"hi\n") == b"\x01hi\n"
    assert ch.decode(EXEC["base64.channel.k8s.io"], "0!!", 5) == ch.Ignored(
        "invalid base64 on channel 0")


def test_only_v5_knows_the_close_signal() -> None:
    assert ch.decode(EXEC["v5.channel.k8s.io"], b"\xff\x00", 5) == ch.Closed(0)
    with pytest.raises(ch.ProtocolError, match="not 2"):
        ch.decode(EXEC["v5.channel.k8s.io"], b"\xff\x00\x00", 5)
    # before v5, 255 is just a channel that does not exist
    assert ch.decode(EXEC["v4.channel.k8s.io"], b"\xff\x00", 5) == ch.Ignored(
        "message for channel 255, which does not exist")


def test_statuses_are_worded_as_each_path_words_them() -> None:
    v5, v4, v1 = EXEC["v5.channel.k8s.io"], EXEC["v4.channel.k8s.io"], EXEC[""]
    assert json.loads(ch.success(v5) or b"") == {"metadata": {}, "status": "Success"}
    assert ch.success(v1) is None  # pre-v4: nothing on success
    assert json.loads(ch.exited(v4, ["ls", "-l"], 2) or b"")["message"] == (
        "command terminated with non-zero exit code: error executing command [ls -l], "
        "exit code 2")
    assert ch.exited(v1, ["ls"], 1) == (
        b"command terminated with non-zero exit code: error executing command [ls], "
        b"exit code 1")
    error = json.loads(ch.internal_error(v5, "boom") or b"")
    assert (error["reason"], error["code"], error["details"]["causes"][0]["message"]) == (
        "InternalError", 500, "Internal error occurred: error executing command in "
        "container: boom")


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), max_size=5),
       st.lists(st.integers(1, 40), max_size=8))
def test_resize_objects_may_span_or_share_messages(
    sizes: list[tuple[int, int]], cuts: list[int]
) -> None:
    stream = "".join(json.dumps({"Width": w, "Height": h}) for w, h in sizes).encode()
    reader, read, start = ch.ResizeReader(), [], 0
    for cut in [*cuts, len(stream)]:
        read += reader.feed(stream[start:start + cut])
        start += cut
    read += reader.feed(stream[start:])
    assert read == sizes


@pytest.mark.parametrize("junk", [b"nonsense", b"[1, 2]"])
def test_resize_junk_is_refused(junk: bytes) -> None:
    with pytest.raises(ValueError, match="resize channel"):
        ch.ResizeReader().feed(junk)

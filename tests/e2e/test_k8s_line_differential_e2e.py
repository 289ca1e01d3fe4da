"""Interactive `kubectl exec -it` sessions through the Kubernetes stream front against real
shells: what the pod ran is exactly what the record says was allowed.

The same differential as test_ssh_line_differential_e2e (its generated sessions, its
settings, its reading of the record: tests/support/line_sessions.py), through the other
door that relays a terminal. The gateway is test_k8s_streams_e2e's (Envoy serving TLS, the
stream front, the API stand-in running real processes in each pod's folder). A raw v5
WebSocket client, framing as kubectl does, opens an exec with a terminal into
staging/web-1 as a member of `sre`, sends the terminal's size, then the generated
keystrokes on stdin, cut in arbitrary messages, all typed ahead, then a last line of its
own and `exit`. The pod's command is line_shells' launcher: a real `bash` or `dash` on the
pod's pseudo-terminal, with the terminal settings a host may have, logging each command
it runs to a file in the pod's folder that the session never names. For every sequence:
the commands the pod ran are the session's LINE records whose decision is allow, in order;
so no refused line ran.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from extproc.codecs import k8s_channels as ch
from tests.e2e import test_k8s_streams_e2e as streams
from tests.standins.k8s_standin import K8sStandIn
from tests.support import tokens
from tests.support.gateway import Gateway
from tests.support.line_sessions import (
    CUTS,
    DIFFERENTIAL,
    END_OF_KEYS,
    KEYS,
    RecordedSession,
    cut,
)
from tests.support.line_shells import SHELLS, STTY, LoggedShell
from tests.support.tls import TlsFiles

# The gateway and the stand-in of the streams' end-to-end tests, started for this module.
cluster, gw = streams.cluster, streams.gw

V5 = ch.EXEC_PROTOCOLS[ch.V5]
# The launcher (line_shells) is in the pod's folder, the command's working directory.
EXEC = "/api/v1/namespaces/staging/pods/web-1/exec?" + urlencode(
    {"command": ["sh", "launch"], "stdin": "true", "stdout": "true", "tty": "true"},
    doseq=True)
SIZE = b'{"Width":200,"Height":30}'  # kubectl sends the terminal's size first
EXIT = "exit"  # the last line: the shell ends, and the stream with it


@pytest.fixture(scope="module")
def shells(cluster: K8sStandIn) -> LoggedShell:
    """The shells' launcher, rcfile and log, in the pod's folder (the stand-in hands
    them to the pod's account, nobody under root, when the shell starts: k8s_pods.py)."""
    return LoggedShell(cluster.pod_root("staging", "web-1"))


class Session(RecordedSession):
    """One `exec -it` session through the gateway, to a shell just prepared."""

    closing = "GET"  # the exec's own record, written when the stream ends

    def __init__(self, gw: Gateway, shells: LoggedShell, tls: TlsFiles) -> None:
        super().__init__(gw, shells)
        self.tls = tls

    async def type(self, chunks: list[bytes], sentinel: str) -> list[str]:
        """`chunks` typed ahead, then `sentinel` as a line: what the pod ran before it.
        Then `exit`, as a user leaves: the pod's Status ends the stream, and the client
        closes its connection then, as kubectl does (it does not wait for the server's
        side of TCP: Envoy closes it after its delayed_close_timeout, 1 s)."""
        token = tokens.token(sub="sre", groups=["sre"], ttl=600)
        async with connect(
                f"wss://127.0.0.1:{self.gw.tls_port}{EXEC}",
                ssl=ssl.create_default_context(cafile=str(self.tls.ca)),
                subprotocols=[Subprotocol(ch.V5)],
                additional_headers={"Authorization": f"Bearer {token}"},
                compression=None, proxy=None, open_timeout=20, close_timeout=0) as ws:
            assert ws.subprotocol == ch.V5
            output = asyncio.ensure_future(_read(ws))  # the terminal, read as kubectl does
            await ws.send(ch.encode(V5, ch.RESIZE, SIZE))
            for chunk in chunks:
                await ws.send(ch.encode(V5, ch.STDIN, chunk))
            await ws.send(ch.encode(V5, ch.STDIN, b"\x15" + sentinel.encode() + b"\r"))
            try:
                ran = await asyncio.to_thread(self.shells.wait_for, sentinel, 20)
                await ws.send(ch.encode(V5, ch.STDIN, EXIT.encode() + b"\r"))
                await asyncio.wait_for(output, 20)
            finally:
                output.cancel()
        return ran

    def line_of(self, record: dict[str, Any]) -> str:
        return str(record["meaning"]["k8s"]["exec"]["line"])


async def _read(ws: ClientConnection) -> None:
    """The pod's output, read as kubectl reads it (a client that reads nothing would have
    the front end the stream), until the Status that ends the command."""
    async for message in ws:
        read = ch.decode(V5, message, 5)
        if isinstance(read, ch.Data) and read.channel == ch.ERROR:
            return


@pytest.mark.parametrize("shell", SHELLS)
@settings(DIFFERENTIAL, max_examples=20)
@given(keys=KEYS, stty=st.sampled_from(STTY), cuts=CUTS)
def test_the_pod_runs_exactly_the_lines_the_record_allowed(
        gw: Gateway, shells: LoggedShell, tls: TlsFiles, shell: str, keys: bytes, stty: str,
        cuts: list[int]) -> None:
    shells.prepare(shell, stty)
    session = Session(gw, shells, tls)
    ran = asyncio.run(session.type(cut(keys, cuts), END_OF_KEYS))
    allowed = session.allowed()
    assert allowed[-2:] == [END_OF_KEYS, EXIT]
    assert ran == allowed[:-2], (keys, stty)

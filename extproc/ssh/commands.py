"""An `exec` request: the command decided, run on the host, its output masked.

    ssh web-1@gateway 'journalctl -u nginx | tail'   →  EXEC exchange: input.ssh.command
      refused  → stderr: tollgate's reason and trace id; exit status 126
      held     → stderr: who must approve, for how long; then as decided
      allowed  → the host runs it (the gateway's key); stdout and stderr masked as they
                 stream; the host's exit status (or signal) is the agent's

The record keeps the command, the decision, the exit status and what the agent was shown
(both streams, masked, as they were interleaved), with its size and SHA-256. What Ansible's
defaults ask of an exec (its home, a pipelined module, a fetch's checksum) is
ansible_exec.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.streamed import reading
from extproc.interpret.ansible import read_upload
from extproc.ssh.ansible_exec import (
    MaskedFetch,
    fed_program,
    home_probe,
    masked_fetch,
    read_program,
)
from extproc.ssh.relay import exit_with, pump_input
from extproc.ssh.uploads import Uploads, carried
from extproc.ssh.upstream import UpstreamError, bounded
from extproc.terminal.gate import (
    FAILED_STATUS,
    REFUSED_STATUS,
    Gate,
    Verdict,
    refusal_text,
)
from extproc.terminal.output import MaskedOutput
from extproc.terminal.relay import pump_output

Connect = Callable[[], Awaitable[asyncssh.SSHClientConnection]]


def say(process: asyncssh.SSHServerProcess[bytes], text: str) -> None:
    """A line of tollgate's own on the agent's stderr (CRLF on a terminal)."""
    end = "\r\n" if process.get_terminal_type() else "\n"
    with contextlib.suppress(OSError, asyncssh.Error):
        process.stderr.write(f"{text}{end}".encode())


async def start_on_host(process: asyncssh.SSHServerProcess[bytes], gate: Gate,
                        connect: Connect, method: str, body: dict[str, Any],
                        command: str | None, what: str,
                        ready: Callable[[Verdict], Awaitable[Refusal | None]] | None = None
                        ) -> tuple[Verdict, asyncssh.SSHClientProcess[bytes]] | None:
    """The request (`body`: input.ssh's) decided and, allowed, running on the host with
    the agent's terminal, if it has one; None when refused or the host cannot run it
    (`what` it was to do): the agent was told why, and the channel ended. `ready`: once
    allowed, why it cannot run after all (what it was decided on changed), or None."""
    term = process.get_terminal_type()
    verdict = await gate.decide(method, {**body, "pty": term is not None},
                                lambda text: say(process, text))
    if verdict.refusal is None and ready is not None and (bad := await ready(verdict)):
        verdict.answer = verdict.exchange.refuse(bad)
        verdict.refusal = refusal_text(verdict.answer)
        verdict.exchange.outcome["tollgate.outcome"] = "refused"
    if verdict.refusal is not None:
        say(process, verdict.refusal)
        process.exit(REFUSED_STATUS)
        gate.end(verdict, status=REFUSED_STATUS)
        return None
    try:
        upstream = await connect()
        remote = bounded(await upstream.create_process(
            command, term_type=term, term_size=process.get_terminal_size() if term else None,
            encoding=None))
    except (UpstreamError, OSError, asyncssh.Error) as exc:
        text = f"tollgate: the host could not {what}: {exc} [trace {verdict.trace_id}]"
        say(process, text)
        process.exit(FAILED_STATUS)
        gate.end(verdict, status=FAILED_STATUS, outcome={"tollgate.outcome": text})
        return None
    return verdict, remote


async def run_exec(process: asyncssh.SSHServerProcess[bytes], gate: Gate, connect: Connect,
                   idle: float, uploads: Uploads | None = None,
                   masked_max: int = 16 * 1024 * 1024) -> None:
    command = process.command or ""
    body: dict[str, Any] = {"request": "exec", "command": command}
    cwd = uploads.cwd if uploads is not None else None
    runs = home_probe(command, gate.target.match.login)
    files = {}
    if uploads is not None and (named := uploads.for_command(command)):
        # The files this session uploaded that the command may run, as the host holds
        # them now; and again once it is allowed (a hold can be long).
        files = await uploads.still_there(connect, named)
        body.update(uploads=files, cwd=cwd)
    program, whole = (await read_program(process)) if (
        fed_program(command) and process.get_terminal_type() is None) else (b"", False)
    if whole:  # the program, read as an uploaded file is; paths from the account's home
        body.update(stdin=carried(await asyncio.to_thread(read_upload, program)), cwd=cwd)
    fetch: MaskedFetch | None = None

    async def ready(verdict: Verdict) -> Refusal | None:
        nonlocal fetch
        if uploads is not None and files:
            gone = sorted(set(files) - set(await uploads.still_there(connect, files)))
            if gone:
                return Refused(409, "upload_changed", (
                    f"{', '.join(gone)} changed on the host since this session uploaded it, "
                    "after the command was decided on what it held"))
        if (mask := verdict.exchange.mask) is not None:
            fetch = await masked_fetch(verdict.exchange.meaning, mask, gate.masker, connect,
                                       cwd, masked_max)
            if fetch is not None and fetch.masked is None:
                return Refused(403, "unmaskable_transfer", fetch.note)
        return None

    started = await start_on_host(process, gate, connect, "EXEC", body, runs or command,
                                  "run the command", ready)
    if started is None:
        return
    verdict, remote = started
    if program:
        remote.stdin.write(program)
    if whole:
        remote.stdin.write_eof()
    try:
        await _relay(process, remote, gate, verdict, idle, fetch, feed=not whole)
    except Refusal as bad:  # its output could not be kept for the flow: none goes on
        remote.close()
        text = refusal_text(verdict.exchange.refuse(bad))
        say(process, text)
        process.exit(REFUSED_STATUS)
        gate.end(verdict, status=REFUSED_STATUS, outcome={"tollgate.outcome": text})
        return
    gate.end(verdict, status=exit_with(process, remote), outcome={"tollgate.outcome": (
        f"ran as {runs!r}: ~{gate.target.match.login} is the home of the host's account"
        if runs else "ran")})


async def _relay(process: asyncssh.SSHServerProcess[bytes],
                 remote: asyncssh.SSHClientProcess[bytes], gate: Gate, verdict: Verdict,
                 idle: float, fetch: MaskedFetch | None, feed: bool) -> None:
    """The command's output to the agent, masked, until it ends; the agent's stdin to it
    meanwhile (`feed`: unless the front sent it whole). Of a fetch's stat (`fetch`), the
    answer is kept whole to give it the masked copy's checksum, and the note follows."""
    exchange = verdict.exchange
    capture = gate.capture(verdict)
    out = MaskedOutput(gate.masker, exchange.mask)
    err = MaskedOutput(gate.masker, exchange.mask)
    held = Held() if fetch is not None else None
    feeding = asyncio.ensure_future(pump_input(process, remote)) if feed else None
    try:
        await asyncio.gather(
            pump_output(remote.stdout.read, held or process.stdout, out,
                        None if held else capture, idle, kept=reading(verdict.act)),
            pump_output(remote.stderr.read, process.stderr, err, capture, idle,
                        kept=reading(verdict.act)))
        await remote.wait_closed()
        if fetch is not None and held is not None:
            # After the module's JSON: Ansible shows a line after it as a warning.
            shown = fetch.answer(bytes(held.data)) + f"\n{fetch.note}\n".encode()
            process.stdout.write(shown)
            capture.add(shown)
    finally:
        if feeding is not None:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
    exchange.record_masking(out.counts + err.counts)


class Held:
    """An output stream kept whole rather than shown as it comes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

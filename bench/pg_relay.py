"""The PostgreSQL benchmark's floor: a front that frames every message as tollgate's
PostgreSQL front does, and decides nothing.

`python -m bench.pg_relay --listen HOST:PORT --upstream HOST:PORT [--processes N]`

Each connection is relayed to the database message by message: the client's bytes cut
into whole messages by extproc/postgres/messages.py's Framer (the startup phase's too),
the database's likewise, each side's messages written in one write per read, over
asyncio streams read in the front's chunks: what tollgate's front does to every message
before any policy, masking or record. No login is checked (the database's own, with
`trust` on 127.0.0.1, is relayed), no TLS. `--processes` share one listening socket, as
tollgate's workers share a port; the first is the others' parent, so its CPU and its children's
are the floor's (bench/postgres.py reads them from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Awaitable, Callable

from extproc.postgres import messages as pg

_READ_SIZE = 64 * 1024  # as the front reads
_MAX_MESSAGE = 64 * 1024 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                framer: pg.Framer) -> None:
    """One direction: whole messages only, each read's in one write."""
    while data := await reader.read(_READ_SIZE):
        messages = framer.feed(data)
        if messages:
            writer.write(b"".join(message.raw() for message in messages))
            await writer.drain()
    writer.close()


def serving(upstream: tuple[str, int]
            ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def relay(client_reader: asyncio.StreamReader,
                    client_writer: asyncio.StreamWriter) -> None:
        try:
            db_reader, db_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        client_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                          socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError, pg.ProtocolViolation):
            await asyncio.gather(
                _pump(client_reader, db_writer,
                      pg.Framer(pg.FRONTEND_KINDS, _MAX_MESSAGE, untyped=True)),
                _pump(db_reader, client_writer, pg.Framer(pg.BACKEND_KINDS, _MAX_MESSAGE)))
        client_writer.close()
        db_writer.close()

    return relay


async def serve(sock: socket.socket, upstream: tuple[str, int]) -> None:
    server = await asyncio.start_server(serving(upstream), sock=sock)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the database")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    up_host, up_port = args.upstream.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(512)
    children = []
    for _ in range(args.processes - 1):
        pid = os.fork()
        if pid == 0:  # a child: serve until told to stop
            asyncio.run(serve(sock, (up_host, int(up_port))))
            os._exit(0)
        children.append(pid)
    try:
        asyncio.run(serve(sock, (up_host, int(up_port))))
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which of a PostgreSQL server's sessions wait on the agents' locks (exchange/lock_waits.py).

Asked on a connection of the gateway's own account, opened for the question and closed
after it (a beat comes every few seconds, and only while a session is in a transaction:
no connection is kept from the server's limit meanwhile). pg_blocking_pids and a
session's user are readable by every role; what another role's session runs is shown to
members of pg_read_all_stats only, so without it the alert names no command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from extproc.exchange.lock_waits import MARK, Waiter, first_word
from extproc.postgres import messages as pg
from extproc.postgres.upstream import UpstreamError, UpstreamSettings, connect

_MAX_MESSAGE = 1 << 20
QUESTION = (MARK + "SELECT holder, w.pid, w.usename, w.query "
             "FROM pg_catalog.pg_stat_activity w, "
             "unnest(pg_catalog.pg_blocking_pids(w.pid)) AS holder WHERE holder IN ({})")


async def waiters(settings: UpstreamSettings, holders: Sequence[int]) -> list[Waiter]:
    """The server's sessions waiting on a lock one of `holders` (backend pids) holds;
    UpstreamError or OSError when the question cannot be asked."""
    upstream = await connect(settings, {"application_name": "tollgate lock waits"})
    try:
        upstream.writer.write(pg.encode_query(
            QUESTION.format(", ".join(str(int(h)) for h in holders))))
        framer = pg.Framer(pg.BACKEND_KINDS, _MAX_MESSAGE)
        out: list[Waiter] = []
        async with asyncio.timeout(settings.connect_timeout):
            while True:
                data = await upstream.reader.read(65536)
                if not data:
                    raise OSError("the database closed the connection")
                for message in framer.feed(data):
                    if message.kind == b"E":
                        raise UpstreamError(pg.fields(message.body))
                    if message.kind == b"D":
                        holder, pid, user, query = pg.data_row(message.body)
                        text = query.decode("utf-8", "replace") if query else None
                        out.append(Waiter(
                            int(holder or 0), int(pid or 0),
                            user.decode("utf-8", "replace") if user else None,
                            None if text == "<insufficient privilege>" else first_word(text)))
                    elif message.kind == b"Z":
                        return out
    finally:
        upstream.close()

"""The gateway's connection to a host (extproc/ssh/upstream.py): a host faster than
tollgate relays its output cannot pile it up in the gateway."""

from __future__ import annotations

import asyncio

import asyncssh

from extproc.ssh.upstream import bounded
from tests.support.sshd import Sshd

SIZE = 40 * 1024 * 1024


async def most_held(sshd: Sshd, bound: bool) -> int:
    """The most the channel buffered while a slow reader read a 40 MB `cat`."""
    path = sshd.put("big.txt", b"lorem ipsum dolor sit amet\n" * (SIZE // 27))
    async with asyncssh.connect(sshd.host, sshd.port, username=sshd.user,
                                client_keys=[str(sshd.client_key_file)],
                                known_hosts=None, config=None) as conn:
        remote = await conn.create_process(f"cat {path}", encoding=None)
        if bound:
            bounded(remote)
        most = 0
        while await remote.stdout.read(256 * 1024):
            held = sum(len(piece) for piece, _ in remote.channel._recv_buf)
            most = max(most, held)
            await asyncio.sleep(0.002)  # a reader slower than the host (tollgate masking)
        return most


async def test_a_slow_reader_holds_at_most_one_window(sshd: Sshd) -> None:
    assert await most_held(sshd, bound=True) <= 2 * 1024 * 1024


async def test_asyncssh_alone_still_holds_more(sshd: Sshd) -> None:
    """Why `bounded` exists: without it the buffer outgrows the window (when asyncssh
    stops doing so, this fails, and `bounded` can go)."""
    assert await most_held(sshd, bound=False) > 4 * 1024 * 1024

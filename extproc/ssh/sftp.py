"""The SFTP relay: an agent's SFTP session (and legacy scp) served by tollgate, each file
operation decided on the host's own path before the host sees it.

    sftp, scp, paramiko, asyncssh ─► SftpRelay (asyncssh's SFTP server) ─► the host's SFTP
      open                 → decided: "open", download / upload / both by its flags
      opendir              → decided: "list", when the listing is first read (asyncssh
                             opens a directory without waiting for its server)
      remove, rename, mkdir, rmdir, setstat (fsetstat too: it can chmod a file opened
      only to read), symlink, link → decided, source and target in one decision
      stat, lstat, fstat, realpath, readlink, statvfs, fsync → passed: metadata only
      read, write          → passed on the handle its open decided; counted and hashed

The decision names the session's root too (the host's starting directory, its realpath
when the session opened), which a removal or a rename must not take away.

A download the decision masks is served from a masked copy: at its open the whole file is
read from the host (a regular file of at most `masked_max` bytes, text: UTF-8 without
NUL), masked whole in place (`mask_file`: each secret's bytes become `*`, so the size a
path's STAT or a listing showed still holds), and every READ at any offset, and the
handle's FSTAT, answered from that copy: a client that reads in parallel or out of order
gets one consistent file, whatever the host changes after the open. What cannot be masked
that way (binary, larger, not a regular file, opened to write too) is refused.

A path is decided as the host resolves it: the host's realpath, so a relative path, `..`
and a symlink under an allowed directory pointing at a refused one are decided on where
they lead; an operation that acts on a name itself (remove, rename, mkdir, rmdir, a link's
new name, an exclusive create) on its real directory and the name. The host is then given
the decided path, not the agent's, which leaves a symlink swapped in after the decision
only its last moments to matter.

A refusal is SFTP's FX_PERMISSION_DENIED with tollgate's reason, also written to the
session's stderr, since OpenSSH's sftp prints stderr but not an error's text.

Legacy `scp -O` reaches the same methods through asyncssh's `allow_scp`, which calls them
as a file system (its own protocol carries the reason, so stderr is left alone there).

asyncssh's SFTPServer serves the gateway's own files by default: every method that
touches a file is overridden here, so nothing falls through to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import posixpath
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, cast

import asyncssh
from asyncssh import (
    FILEXFER_TYPE_REGULAR,
    FX_CONNECTION_LOST,
    FX_FAILURE,
    FX_NO_CONNECTION,
    FX_PERMISSION_DENIED,
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPAttrs,
    SFTPClient,
    SFTPClientFile,
    SFTPError,
    SFTPName,
    SFTPVFSAttrs,
)

from extproc.interpret.ansible import MAX_BYTES, read_upload
from extproc.ssh.uploads import Uploads
from extproc.ssh.upstream import UpstreamError
from extproc.terminal.files import Unmaskable

log = logging.getLogger("tollgate.ssh.sftp")

Connect = Callable[[], Awaitable[asyncssh.SSHClientConnection]]

# Pieces of a transfer that arrive ahead of the next expected offset wait this long for
# what comes before them; beyond it the digest is given up (the transfer is not complete).
REORDER_LIMIT = 16 * 1024 * 1024
# The largest file a masked download reads whole (ssh.sftp_masked_max_bytes's default).
MASKED_MAX = 16 * 1024 * 1024
# How far ahead a file read in sequence is fetched from the host.
READ_AHEAD = 2 * 1024 * 1024


class Ticket(Protocol):
    """One decided operation. `refusal` None: allowed; else what the client is told (the
    refusal is already recorded). `mask`: None when a download's bytes pass as they are;
    else what the whole file goes through (raising Unmaskable for what it cannot mask)."""

    refusal: str | None
    mask: Callable[[bytes], bytes] | None

    def refuse(self, reason: str) -> str:
        """An allowed operation refused after all (what the decision asks cannot be done):
        recorded as refused; the text the client is told."""

    def finish(self, outcome: dict[str, Any]) -> None:
        """Once, when an allowed operation ends. An open's outcome: size (bytes moved),
        sha256, complete (the whole file went through in order), error, masked (served
        from a masked copy); the others': error.
        """


class SftpGate(Protocol):
    """Where the front decides and records each operation (input.ssh.sftp)."""

    async def decide(self, sftp: dict[str, Any]) -> Ticket: ...


class Transfer:
    """The bytes one handle moved, and the SHA-256 of the file as they made it.

    The digest means something only if the bytes went through in order from 0: clients
    pipeline many requests and ask again after a short read, so a piece ahead of the next
    expected offset waits here (up to REORDER_LIMIT) for those before it. An overlap, a
    piece seen twice or too much waiting gives the digest up: `complete` is then false.
    """

    def __init__(self) -> None:
        self.size = 0  # every byte moved, in order or not
        self.hashed = 0  # the in-order prefix the digest covers
        self.in_order = True
        self._digest = hashlib.sha256()
        self._ahead: dict[int, bytes] = {}
        self._waiting = 0

    def add(self, offset: int, data: bytes) -> None:
        self.size += len(data)
        if not self.in_order or not data:
            return
        if offset == self.hashed:
            self._take(data)
            while (following := self._ahead.pop(self.hashed, None)) is not None:
                self._waiting -= len(following)
                self._take(following)
        elif (offset > self.hashed and offset not in self._ahead
              and self._waiting + len(data) <= REORDER_LIMIT):
            self._ahead[offset] = data
            self._waiting += len(data)
        else:
            self.in_order = False
            self._ahead.clear()
            self._waiting = 0

    def outcome(self, end: int | None, error: str | None, masked: bool = False
                ) -> dict[str, Any]:
        """`end`: the file's size when the transfer ended (None: unknown)."""
        complete = self.in_order and not self._ahead and end == self.hashed
        return {"size": self.size, "sha256": self._digest.hexdigest(), "complete": complete,
                "error": error, **({"masked": True} if masked else {})}

    def _take(self, data: bytes) -> None:
        self._digest.update(data)
        self.hashed += len(data)


class CopyTransfer:
    """What a masked download's handle moved, every read served from the one masked copy.

    The bytes at an offset are the copy's whatever the order, so pieces read twice or
    overlapping (paramiko's prefetch asks again for what it has not received yet) take
    nothing from the record: the transfer is complete once its pieces cover the copy from
    0, and its digest is that of the part covered from 0. `size` is every byte moved.
    """

    def __init__(self, copy: bytes) -> None:
        self.copy = copy
        self.size = 0
        self.covered = 0  # the copy is covered from 0 up to here
        self._ahead: dict[int, int] = {}  # pieces beyond it: start -> furthest end

    def add(self, offset: int, data: bytes) -> None:
        self.size += len(data)
        end = offset + len(data)
        if end <= self.covered:
            return
        if offset > self.covered:
            self._ahead[offset] = max(end, self._ahead.get(offset, 0))
            return
        self.covered = end
        while reached := [start for start in self._ahead if start <= self.covered]:
            for start in reached:
                self.covered = max(self.covered, self._ahead.pop(start))

    def outcome(self, end: int | None, error: str | None, masked: bool = True
                ) -> dict[str, Any]:
        """`end`: the copy's size (a masked copy's is known)."""
        complete = end == len(self.copy) == self.covered
        return {"size": self.size,
                "sha256": hashlib.sha256(self.copy[:self.covered]).hexdigest(),
                "complete": complete, "error": error, **({"masked": True} if masked else {})}


class _Handle:
    """A file open on the host, the decision that opened it and what went through it."""

    def __init__(self, file: SFTPClientFile, ticket: Ticket, path: str,
                 read_ahead: bool) -> None:
        self.file, self.ticket, self.path = file, ticket, path
        self.transfer: Transfer | CopyTransfer = Transfer()
        self.error: str | None = None
        self.masked: bytes | None = None  # a masked download's copy, which reads are from
        # An upload's bytes, while they come in order from 0 (Uploads remembers the file).
        self.uploaded: bytearray | None = None
        self._read_ahead = read_ahead
        self._next = 0
        self._window_at, self._window = 0, b""

    async def read(self, offset: int, size: int) -> bytes:
        """asyncssh serves an SFTP session's requests one at a time, so each read would
        wait for the host in turn. A handle opened only to read (nothing the agent writes
        through it to see) is fetched a window ahead where it is read in sequence, the host
        answering the window's parts in parallel."""
        if self.masked is not None:
            return self.masked[offset:offset + size]
        if not self._read_ahead:
            return cast(bytes, await self.file.read(size, offset))
        start = offset - self._window_at
        if start < 0 or offset + size > self._window_at + len(self._window):
            fetch = max(size, READ_AHEAD) if offset == self._next else size
            self._window = cast(bytes, await self.file.read(fetch, offset))
            self._window_at, start = offset, 0
        data = self._window[start:start + size]
        self._next = offset + len(data)
        return data

    def failed(self, exc: SFTPError) -> None:
        self.error = self.error or exc.reason

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """asyncssh answers `ranges@asyncssh.com` (which parts of a sparse file hold data)
        by seeking the handle for data and holes; the host's holes are unknown here, so
        all of the file is data."""
        return sys.maxsize if whence == os.SEEK_HOLE else offset


class SftpRelay(asyncssh.SFTPServer):
    """One agent SFTP session (or scp command), relayed to the host's SFTP server over
    the gateway's connection (`connect`), every path decided through `gate`.

    asyncssh builds it synchronously per channel (as its `sftp_factory`), so the host's
    SFTP session is opened alongside, and each operation waits for it: a host that cannot
    be reached fails every operation with the reason, and never the agent's connection.
    """

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], gate: SftpGate,
                 connect: Connect, masked_max: int = MASKED_MAX,
                 uploads: Uploads | None = None) -> None:
        super().__init__(chan)
        self._gate = gate
        self._uploads = uploads if uploads is not None else Uploads()
        self._masked_max = masked_max
        self._root = ""  # the host's starting directory, known once the host answered
        self._starting = asyncio.ensure_future(self._start(connect))

    async def _start(self, connect: Connect) -> SFTPClient:
        host = await (await connect()).start_sftp_client()
        try:
            self._root = (await host.realpath(b".")).decode()
            self._uploads.cwd = self._root
        except UnicodeDecodeError:
            host.exit()
            raise asyncssh.SFTPFailure("its starting directory is not UTF-8") from None
        return host

    async def _host(self) -> SFTPClient:
        try:
            return await asyncio.shield(self._starting)
        except (UpstreamError, OSError, asyncssh.Error) as exc:
            raise self._refused(FX_FAILURE, f"tollgate: the host's SFTP server could not "
                                            f"be reached: {exc}") from None

    def _refused(self, code: int, text: str) -> SFTPError:
        """An error for the client, its text on stderr too where the client shows it."""
        if self.channel.get_subsystem() == "sftp":
            # A session closing has only the SFTP error to tell.
            with contextlib.suppress(OSError):
                self.channel.write_stderr(f"{text}\n".encode())
        return SFTPError(code, text)

    async def _decide(self, operation: str, path: bytes, target: bytes | None = None,
                      direction: str = "none", truncates: bool = False) -> Ticket:
        """The gate's ticket for an allowed operation (`truncates`: it empties or cuts the
        file: an open that truncates, a setstat of its size); a refusal raised as the
        client's error. A failure to decide refuses."""
        try:
            sftp = {"operation": operation, "path": path.decode(),
                    "target_path": target.decode() if target is not None else None,
                    "direction": direction, "truncates": truncates, "root": self._root}
        except UnicodeDecodeError:
            raise self._refused(FX_PERMISSION_DENIED, "tollgate: refused: a path that is "
                                "not UTF-8 cannot be decided") from None
        try:
            ticket = await self._gate.decide(sftp)
        except Exception:
            log.exception("SFTP %s of %r could not be decided", operation, sftp["path"])
            raise self._refused(FX_FAILURE, "tollgate: the operation could not be decided; "
                                            "nothing was done") from None
        if ticket.refusal is not None:
            raise self._refused(FX_PERMISSION_DENIED, ticket.refusal)
        return ticket

    async def _apply(self, ticket: Ticket, action: Awaitable[object]) -> None:
        """Run an allowed operation on the host; its ticket told how it ended."""
        error: str | None = None
        try:
            await action
        except BaseException as exc:
            error = _reason(exc)
            raise
        finally:
            ticket.finish({"error": error})

    async def _decided(self, operation: str, path: bytes, target: bytes | None,
                       action: Callable[[], Awaitable[object]], truncates: bool = False
                       ) -> None:
        ticket = await self._decide(operation, path, target, truncates=truncates)
        for name in (path, target):  # what it may change is no longer as uploaded
            if name is not None:
                self._uploads.forget(name.decode())
        await self._apply(ticket, action())

    # -- files --------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> _Handle:
        host = await self._host()
        # An exclusive create does not follow a symlink: it fails on the link itself.
        exclusive = bool(pflags & FXF_CREAT and pflags & FXF_EXCL)
        real = await _resolve(host, path, follow=not exclusive)
        direction = _direction(pflags)
        ticket = await self._decide("open", real, direction=direction,
                                    truncates=bool(pflags & FXF_TRUNC))
        if ticket.mask is not None and direction != "download":
            # Before the host opens it: an open to write may create or truncate.
            raise self._refused(FX_PERMISSION_DENIED, ticket.refuse(
                "this file would be read unmasked through a handle that also writes: open "
                "it to read only, and it is served masked"))
        try:
            file = await host.open(real, pflags, attrs, encoding=None)
        except BaseException as exc:
            ticket.finish(Transfer().outcome(None, _reason(exc)))
            raise
        handle = _Handle(file, ticket, real.decode(), direction == "download")
        if direction != "download":
            self._uploads.forget(handle.path)
            handle.uploaded = bytearray() if direction == "upload" else None
        if ticket.mask is not None:
            await self._mask(handle, ticket.mask)
        return handle

    async def _mask(self, handle: _Handle, mask: Callable[[bytes], bytes]) -> None:
        """The whole file read now and masked: every READ is served from that copy. What
        cannot be is refused, the host's handle closed."""
        limit = self._masked_max
        try:
            attrs = await handle.file.stat()
            if attrs.type != FILEXFER_TYPE_REGULAR:
                raise Unmaskable("not a regular file, so it cannot be read whole and masked")
            if (attrs.size or 0) > limit:
                raise Unmaskable(f"{attrs.size} bytes, more than the {limit} a masked "
                                 "download reads (ssh.sftp_masked_max_bytes)")
            data = cast(bytes, await handle.file.read(limit + 1, 0))
            if len(data) > limit:
                raise Unmaskable(f"more than the {limit} bytes a masked download reads "
                                 "(ssh.sftp_masked_max_bytes)")
            # Off the event loop: ~50 ms a MB, which every other session would wait out.
            masked = await asyncio.to_thread(mask, data)
            if len(masked) != len(data):  # what a client was told by STAT would not hold
                raise Unmaskable("masking would change its size")
        except Unmaskable as exc:
            text = handle.ticket.refuse(f"the policy masks what this host sends, and this "
                                        f"file cannot be served masked: {exc}")
            with contextlib.suppress(SFTPError):
                await handle.file.close()
            raise self._refused(FX_PERMISSION_DENIED, text) from None
        except BaseException as exc:
            handle.ticket.finish(Transfer().outcome(None, _reason(exc)))
            with contextlib.suppress(SFTPError):
                await handle.file.close()
            raise
        handle.masked = masked
        handle.transfer = CopyTransfer(masked)

    def open56(self, *_: Any) -> _Handle:
        """SFTP 5 and 6's open, which asyncssh offers only above the version 3 the front
        serves (its default): never the gateway's own files."""
        raise asyncssh.SFTPOpUnsupported("tollgate relays SFTP version 3 only")

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        handle = cast(_Handle, file_obj)
        try:
            data = await handle.read(offset, size)
        except SFTPError as exc:
            handle.failed(exc)
            raise
        handle.transfer.add(offset, data)
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        handle = cast(_Handle, file_obj)
        try:
            written = await handle.file.write(data, offset)
        except SFTPError as exc:
            handle.failed(exc)
            raise
        handle.transfer.add(offset, data)
        if handle.uploaded is not None:
            if offset == len(handle.uploaded) and offset + len(data) <= MAX_BYTES:
                handle.uploaded += data
            else:
                handle.uploaded = None
        return written

    async def close(self, file_obj: object) -> None:
        """Close on the host; the open's ticket gets the transfer, judged complete against
        the file's size as the host has it at the end."""
        handle = cast(_Handle, file_obj)
        end = len(handle.masked) if handle.masked is not None else None
        if end is None:
            with contextlib.suppress(SFTPError):  # no size: not known to be complete
                end = (await handle.file.stat()).size
        try:
            await handle.file.close()
        except SFTPError as exc:
            handle.failed(exc)
            # Without the host there is nothing left to close; raising here would end the
            # agent's whole connection when asyncssh closes what a session left open.
            if exc.code not in (FX_NO_CONNECTION, FX_CONNECTION_LOST):
                raise
        finally:
            outcome = handle.transfer.outcome(end, handle.error, handle.masked is not None)
            handle.ticket.finish(outcome)
        if handle.uploaded is not None and outcome["complete"] and end == len(handle.uploaded):
            # The whole file as uploaded, read off the event loop (a payload: ~5 ms).
            self._uploads.remember(handle.path,
                                   await asyncio.to_thread(read_upload, bytes(handle.uploaded)))

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        """The host's attributes; a masked download's size is its copy's."""
        handle = cast(_Handle, file_obj)
        attrs = await handle.file.stat()
        if handle.masked is not None:
            attrs.size = len(handle.masked)
        return attrs

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        handle = cast(_Handle, file_obj)
        await self._decided("setstat", handle.path.encode(), None,
                            lambda: handle.file.setstat(attrs), attrs.size is not None)

    async def fstatvfs(self, file_obj: object) -> SFTPVFSAttrs:
        return await cast(_Handle, file_obj).file.statvfs()

    async def fsync(self, file_obj: object) -> None:
        await cast(_Handle, file_obj).file.fsync()

    # -- paths --------------------------------------------------------------------------

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        host = await self._host()
        real = await _resolve(host, path, follow=True)
        ticket = await self._decide("list", real, direction="download")
        error: str | None = None
        try:
            async for name in host.scandir(real):
                yield name
        except BaseException as exc:
            error = _reason(exc)
            raise
        finally:
            ticket.finish({"error": error})

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._setstat(path, attrs, follow=True)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._setstat(path, attrs, follow=False)

    async def _setstat(self, path: bytes, attrs: SFTPAttrs, follow: bool) -> None:
        host = await self._host()
        real = await _resolve(host, path, follow=follow)
        await self._decided("setstat", real, None,
                            lambda: host.setstat(real, attrs, follow_symlinks=follow),
                            attrs.size is not None)

    async def remove(self, path: bytes) -> None:
        host = await self._host()
        real = await _resolve(host, path, follow=False)
        await self._decided("remove", real, None, lambda: host.remove(real))

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        host = await self._host()
        real = await _resolve(host, path, follow=False)
        await self._decided("mkdir", real, None, lambda: host.mkdir(real, attrs))

    async def rmdir(self, path: bytes) -> None:
        host = await self._host()
        real = await _resolve(host, path, follow=False)
        await self._decided("rmdir", real, None, lambda: host.rmdir(real))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, posix=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, posix=True)

    async def _rename(self, oldpath: bytes, newpath: bytes, posix: bool) -> None:
        host = await self._host()
        old = await _resolve(host, oldpath, follow=False)
        new = await _resolve(host, newpath, follow=False)
        move = host.posix_rename if posix else host.rename
        await self._decided("rename", old, new, lambda: move(old, new))

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        """A link at `newpath` holding `oldpath`: decided on where it would lead (from the
        link's directory when relative; as written where the host cannot resolve it yet),
        while the host stores `oldpath` as given."""
        host = await self._host()
        link = await _resolve(host, newpath, follow=False)
        leads = posixpath.join(posixpath.dirname(link), oldpath)
        try:
            leads = await _resolve(host, leads, follow=True)
        except asyncssh.SFTPNoSuchFile:
            leads = posixpath.normpath(leads)  # a directory not there (yet): as written
        await self._decided("symlink", link, leads, lambda: host.symlink(oldpath, link))

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        """A hard link at `newpath` to `oldpath` itself (the host's link(2) does not follow
        a symlink there)."""
        host = await self._host()
        existing = await _resolve(host, oldpath, follow=False)
        new = await _resolve(host, newpath, follow=False)
        await self._decided("link", new, existing, lambda: host.link(existing, new))

    async def stat(self, path: bytes) -> SFTPAttrs:
        return await (await self._host()).stat(path)

    async def lstat(self, path: bytes) -> SFTPAttrs:
        return await (await self._host()).lstat(path)

    async def realpath(self, path: bytes) -> bytes:
        return await (await self._host()).realpath(path)

    async def readlink(self, path: bytes) -> bytes:
        return await (await self._host()).readlink(path)

    async def statvfs(self, path: bytes) -> SFTPVFSAttrs:
        return await (await self._host()).statvfs(path)

    def exit(self) -> None:
        """The session ended (asyncssh has closed what it left open): the host's SFTP
        session ends, and the channel with status 0, which OpenSSH's sftp waits for."""
        if not self._starting.done():
            self._starting.cancel()
        elif not self._starting.cancelled() and self._starting.exception() is None:
            self._starting.result().exit()
        self.channel.exit(0)


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, SFTPError) else str(exc) or type(exc).__name__


def _direction(pflags: int) -> str:
    """Which way an open lets data go. Without READ or WRITE the host opens the file
    read-only (OpenSSH), and CREAT, TRUNC or APPEND change it whatever else is asked."""
    reads = bool(pflags & FXF_READ) or not pflags & FXF_WRITE
    writes = bool(pflags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC))
    return "both" if reads and writes else "upload" if writes else "download"


async def _resolve(host: SFTPClient, path: bytes, follow: bool) -> bytes:
    """`path` as the host resolves it. Followed: the host's realpath (OpenSSH's resolves a
    last name not there yet, and a dangling symlink to where it would create a file).
    Not followed: the real directory and the name, the name itself never resolved."""
    if follow:
        return await host.realpath(path)
    head, name = posixpath.split(path.rstrip(b"/"))
    if name in (b"", b".", b".."):
        return await host.realpath(path)
    return posixpath.join(await host.realpath(head or b"."), name)

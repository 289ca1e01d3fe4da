"""`kubectl cp`: the tar archive an exec carries, read as it passes, file by file.

kubectl copies out of a pod by running `tar cf - <path>` there and reading its stdout,
into one by running `tar -xmf - -C <folder>` and writing the archive to its stdin. The
stream front reads that archive (codecs/tar_stream.py) whichever way it goes:

- each entry is a FILE exchange (input.k8s.exec.file: its path in the pod, direction,
  type, size, link), decided before any of its bytes pass, as SFTP's paths are;
- a refused entry is left out of the archive whole (header, content, padding), which
  stays a valid archive; the client is told on stderr, with the reason and trace id;
- a download's file under a mask is read whole (at most `masked_max` bytes), masked as an
  SFTP download is (terminal/files.py: the same size, so its header stays true) and sent;
  one that cannot be masked (binary, too large) is left out and said so;
- an archive that cannot be read for sure (compressed, malformed, sparse files, ...)
  ends the stream: nothing of it passes unread.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Awaitable, Callable
from typing import Literal

from extproc.codecs.refusal import Refused
from extproc.codecs.tar_stream import Data, End, Entry, Event, TarError, TarReader
from extproc.terminal.files import Unmaskable, mask_file
from extproc.terminal.gate import Gate, Verdict

Direction = Literal["download", "upload"]
# tar's options that compress or filter the archive: a stream tollgate cannot read.
_FILTER_LETTERS = frozenset("zjJZa")
_FILTER_OPTIONS = ("--gzip", "--gunzip", "--bzip2", "--xz", "--lzip", "--lzma", "--lzop",
                   "--zstd", "--compress", "--uncompress", "--auto-compress",
                   "--use-compress-program", "-I")


class ArchiveRefused(Exception):
    """The archive cannot be read for sure: the stream ends (its text says why)."""


def archive_mode(argv: list[str]) -> tuple[Direction | None, str]:
    """Whether `argv` is tar writing an archive to stdout ("download") or reading one
    from stdin ("upload"), and the folder its names are relative to ("" unknown).
    A tar that filters its archive through a compressor is refused (ArchiveRefused)."""
    if not argv or posixpath.basename(argv[0]) != "tar":
        return None, ""
    args = argv[1:]
    letters = ""
    for i, arg in enumerate(args):
        if i == 0 and not arg.startswith("-"):
            letters += arg  # old style: `tar cf - x`
        elif arg.startswith("-") and not arg.startswith("--"):
            letters += arg[1:]
    longs = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    if "f" in letters and "-" not in args:
        return None, ""  # an archive in a file: no stream to read
    if _FILTER_LETTERS & set(letters) or any(o in _FILTER_OPTIONS for o in (*longs, *args)):
        raise ArchiveRefused("a compressed archive cannot be read: kubectl cp does not "
                             "compress")
    base = _folder(args)
    if "c" in letters or "--create" in longs:
        operands = [a for a in args[1:] if not a.startswith("-")]
        absolute = bool(operands) and all(a.startswith("/") for a in operands)
        return "download", base or ("/" if absolute else "")
    if "x" in letters or "--extract" in longs or "--get" in longs:
        return "upload", base
    return None, ""


def _folder(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg == "-C" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--directory="):
            return arg.split("=", 1)[1]
    return ""


class Archive:
    """One archive read as it passes; `emit` sends what was read on (to the client for a
    download, to the pod for an upload); `tell` shows the client a line of tollgate's."""

    def __init__(self, gate: Gate, direction: Direction, base: str,
                 masked_max: int, emit: Callable[[bytes], Awaitable[None]],
                 tell: Callable[[str], None]) -> None:
        self.direction = direction
        self._gate, self._masker, self._base = gate, gate.masker, base
        self._masked_max, self._emit, self._tell = masked_max, emit, tell
        self._reader = TarReader()
        self._entry: Entry | None = None
        self._verdict: Verdict | None = None
        self._skipping = False
        self._held: bytearray | None = None  # a masked file's bytes, read whole first
        self._digest = hashlib.sha256()
        self._sent = 0
        # What was left out of an upload, said: the command's end then says it failed.
        self.refused: list[str] = []

    async def pump(self, read: Callable[[int], Awaitable[bytes]]) -> None:
        """A download: the pod's stdout read to its end."""
        while data := await read(64 * 1024):
            await self.feed(data)
        await self.finish()

    async def feed(self, data: bytes) -> None:
        try:
            events = self._reader.feed(data)
        except TarError as exc:
            raise ArchiveRefused(f"the archive cannot be read: {exc}") from None
        for event in events:
            await self._event(event)

    async def finish(self) -> None:
        try:
            events = self._reader.finish()
        except TarError as exc:
            raise ArchiveRefused(f"the archive cannot be read: {exc}") from None
        for event in events:
            await self._event(event)

    def close(self) -> None:
        """The stream ended: a file still open is recorded as cut short."""
        if self._verdict is not None:
            self._end("cut short")

    async def _event(self, event: Event) -> None:
        """An entry ends where the next one (or the archive's end) begins."""
        if isinstance(event, Entry | End):
            await self._close_entry()
            if isinstance(event, Entry):
                await self._entered(event)
            elif event.raw:
                await self._emit(event.raw)
            return
        data = event.chunk if isinstance(event, Data) else event.raw
        if self._skipping or not data:
            return
        if self._held is not None:
            self._held += data
        else:
            await self._send(data)

    async def _close_entry(self) -> None:
        if self._held is not None:
            await self._release_masked()
        elif self._verdict is not None:
            self._end("copied")

    async def _entered(self, entry: Entry) -> None:
        path = _joined(self._base, entry.path)
        verdict = await self._gate.decide("FILE", {"request": "file", "file": {
            "path": path, "direction": self.direction, "type": entry.kind,
            "size": entry.size, "link": entry.linkname or None,
            "target": _target(self._base, path, entry)}})
        self._entry, self._skipping, self._held = entry, False, None
        self._digest, self._sent = hashlib.sha256(), 0
        if verdict.refusal is not None:
            self._skipping = True
            self._tell(verdict.refusal)
            if self.direction == "upload":
                self.refused.append(verdict.refusal)
            self._gate.end(verdict)
            self._verdict = None
            return
        self._verdict = verdict
        masked = self.direction == "download" and verdict.exchange.mask is not None \
            and entry.kind == "file"
        if masked and entry.size > self._masked_max:
            self._skip(f"{entry.size} bytes, more than the {self._masked_max} a masked "
                       "copy reads whole")
        elif masked:
            self._held = bytearray(entry.raw)
        else:
            await self._send(entry.raw)

    async def _release_masked(self) -> None:
        """A masked file read whole: masked, then sent; left out when it cannot be."""
        entry, verdict, held = self._entry, self._verdict, self._held
        assert entry is not None and verdict is not None and held is not None
        self._held = None
        header = len(entry.raw)
        content = bytes(held[header:header + entry.size])
        spec = verdict.exchange.mask
        assert spec is not None
        try:
            masked, counts = mask_file(self._masker, spec, content)
        except Unmaskable as exc:
            self._skip(str(exc))
            return
        verdict.exchange.record_masking(counts)
        await self._send(bytes(held[:header]) + masked + bytes(held[header + entry.size:]))
        self._end("copied")

    def _skip(self, why: str) -> None:
        """An allowed entry that cannot be sent as the decision asks: left out."""
        verdict = self._verdict
        assert verdict is not None
        exchange = verdict.exchange
        self._skipping, self._held = True, None
        answer = exchange.refuse(Refused(403, "unmaskable_transfer",
                                          f"left out of the copy: {why}"))
        exchange.outcome["tollgate.outcome"] = "refused"
        self._tell(f"tollgate: {answer.body.get('message')} [trace {exchange.trace_id}]")
        self._gate.end(verdict)
        self._verdict = None

    async def _send(self, data: bytes) -> None:
        self._digest.update(data)
        self._sent += len(data)
        await self._emit(data)

    def _end(self, how: str) -> None:
        verdict = self._verdict
        if verdict is None:
            return
        self._verdict = None
        entry = self._entry
        size = entry.size if entry is not None else 0
        self._gate.end(verdict, outcome={
            "tollgate.outcome": f"{how}: {size} bytes",
            "tollgate.k8s.copy.size": size,
            "tollgate.k8s.copy.sha256": self._digest.hexdigest()},
            headers={"size": str(size), "sha256": self._digest.hexdigest()})


def _joined(base: str, name: str) -> str:
    """An entry's path in the pod: under the archive's folder when it is known (`..`
    kept, for the pack to see)."""
    name = name.rstrip("/") or "."
    if not base:
        return name
    return posixpath.normpath(posixpath.join(base, name)) if ".." not in name.split("/") \
        else posixpath.join(base, name)


def _target(base: str, path: str, entry: Entry) -> str | None:
    """What a link names, as a path in the pod: a symlink's target against its own
    folder, a hard link's against the folder tar extracts into."""
    link = entry.linkname
    if not link or entry.kind not in ("symlink", "hardlink"):
        return None
    if link.startswith("/"):
        return posixpath.normpath(link)
    folder = posixpath.dirname(path) if entry.kind == "symlink" else base
    return posixpath.normpath(posixpath.join(folder, link)) if folder else link

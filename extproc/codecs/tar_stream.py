"""Tar streams (POSIX ustar and pax, GNU, V7 headers) read as the bytes pass; pure, no I/O.

Why: `kubectl cp` is a tar stream over a Kubernetes exec. A download runs `tar cf - <path>`
in the pod (GNU tar or busybox writes, kubectl's Go archive/tar reads stdout); an upload
runs `tar xmf - -C <dir>` there (kubectl's Go archive/tar writes stdin, the pod's tar
reads it). A gateway on that stream must judge each entry's name before any of its content
goes on, replace a file's content by a masked one of the same length, and never pass an
archive that one of those readers (GNU tar, busybox, Go, Python's tarfile) would extract
otherwise than it was judged. So this reader takes what GNU tar extracts and refuses, with
`TarError(reason)`, what it cannot read for sure or what the readers read differently.

`TarReader.feed(bytes)` returns the events the bytes complete, whatever the cuts between
chunks (only Data and End chunks split differently); `finish()` at the stream's end:
- `Entry`: an entry's name, kind, size, mode and link target, known before its content;
  `raw` is every header block that made it (pax and GNU long-name headers with their
  content and padding), byte for byte;
- `Data(entry, chunk, last)`: its content, for regular files only (`kind == "file"`),
  `last` on the final chunk; an empty file gives one `Data(entry, b"", True)`;
- `Padding(entry, raw)`: the zero bytes that fill its last block (none when the size is a
  multiple of 512);
- `End(raw)`: the end-of-archive block and every byte after it, as fed.
Re-emitting every `raw` and chunk in order gives the input back; replacing a file's chunks
by as many bytes gives a valid archive (its header holds only the size).

Accepted: typeflags `0`, `\\0` and `7` (contiguous) as files (`\\0` with a trailing slash is
a V7 directory), `1` hardlink, `2` symlink, `3` chardev, `4` blockdev, `5` dir, `6` fifo;
`L`/`K` (GNU long name and link) and `x` (pax) headers, whose `path`, `linkpath` and
`size` records are applied; other pax keywords (times, owners, xattrs, comments) change
no name nor content and are ignored (`tar xmf -` restores no xattrs). Checksums may be unsigned or
signed (GNU tar takes either); numeric fields are octal, padded with spaces or NULs, and
a size may be base-256 (GNU, for 8 GiB and more).

Refused: a bad checksum or a malformed numeric field; a size over `max_size` (pax and
long-name content over `max_meta`); pax records malformed or whose length lies, a
duplicated `path`/`linkpath`/`size`, or a NUL in a key or a name; sparse files (GNU `S`,
pax `GNU.sparse.*`), multi-volume and label headers (`M`, `V`, `GNU.volume.*`),
incremental dumps (`D`, `GNU.dumpdir`), `N`; pax global headers (`g`: GNU tar keeps their
records for later entries, busybox applies their `path`, Go hands them over as an entry);
Solaris `X` (Go does not read it as pax); any other typeflag (GNU tar would extract it as
a regular file); an empty name; a link with no target; a non-file entry with content
(GNU tar skips the content, Go and tarfile read it as the next header); a `0` or `7` file
whose name ends with `/` (GNU tar makes a directory, Go and tarfile a file); two long
names, two pax headers, or a long name with a pax `path` for one entry (readers keep
different ones); a ustar prefix where only tarfile would read one; pax or long-name
headers with no entry after them; non-zero padding or non-zero bytes after the end (a
relay would pass them on unread; busybox extracts what follows a lone zero block).

End of archive: GNU tar stops at the first zero block (it warns when no second one
follows), so the first zero block is the end here too. A stream that stops at a header
boundary without any zero block is a whole archive (GNU tar and Go accept it silently):
`finish()` then gives `End(b"")`; a partial block of zeros there is accepted likewise. An
empty stream is refused (GNU tar: "This does not look like a tar archive"), and so is one
that stops inside a header, content or padding.

Names: `Entry.name` is the archive's name as GNU tar reads it: a pax `path`, else a GNU
long name, else the ustar prefix (magic `ustar\\0` only) joined to the name field; bytes
decoded as UTF-8 with surrogateescape, so a name round-trips to its bytes. `Entry.path` is
where GNU tar extracts it under `-C <dir>` (`extract_name`): GNU tar up to 1.35 skips a
member with a `..` component instead, later versions write it there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
MAX_SIZE = 1 << 36  # 64 GiB: a bound on any entry, well above what a cp carries
MAX_META = 1 << 20  # pax and long-name content held in memory for one entry

KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
         b"3": "chardev", b"4": "blockdev", b"5": "dir", b"6": "fifo"}
_META = frozenset({b"L", b"K", b"x"})
_REFUSED = {
    b"S": "a GNU sparse file",
    b"M": "a multi-volume continuation",
    b"V": "a volume label",
    b"D": "a GNU incremental dump directory",
    b"N": "a GNU long-names record (obsolete)",
    b"g": "a pax global header, which GNU tar, busybox and Go each apply differently",
    b"X": "a Solaris extended header, which Go reads as a file",
}
_OCTAL = re.compile(rb" *([0-7]+)[ \0]*")
_DECIMAL = re.compile(rb"[0-9]{1,20}")
_RECORD_LENGTH = re.compile(rb"([0-9]{1,20}) ")
_HIGH = bytes(range(0x80, 0x100))
_USTAR = b"ustar\0"


class TarError(ValueError):
    """A stream the reader refuses; `reason` says why in a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    """One archive member, known before its content."""

    name: str  # as GNU tar reads it (pax path, long name, prefix/name), trailing / kept
    kind: str  # KINDS' values
    size: int  # content bytes (0 for every kind but "file")
    mode: int
    linkname: str  # a link's target ("" for other kinds)
    typeflag: bytes
    raw: bytes  # every header block of the entry, as received
    offset: int  # where raw starts in the stream

    @property
    def path(self) -> str:
        """Where GNU tar extracts the entry, relative to its `-C` directory."""
        return extract_name(self.name)


@dataclass(frozen=True)
class Data:
    """Content bytes of a file entry; `last` on the chunk that completes it."""

    entry: Entry
    chunk: bytes
    last: bool


@dataclass(frozen=True)
class Padding:
    """The zero bytes after a file's content, up to its next 512-byte boundary."""

    entry: Entry
    raw: bytes


@dataclass(frozen=True)
class End:
    """The end-of-archive block, or bytes after it (zero padding to the record size)."""

    raw: bytes


Event = Entry | Data | Padding | End


def extract_name(name: str) -> str:
    """A member name as GNU tar extracts it without --absolute-names: trailing slashes
    dropped, then everything up to its last `..` component and leading slashes
    (safer_name_suffix); "." if nothing is left. A hard link's target goes the same way,
    a symlink's is written as it is."""
    stripped = name.rstrip("/") or name[:1]
    cut = 0
    for start in (0, *(i + 1 for i, c in enumerate(stripped) if c == "/")):
        if stripped.startswith("..", start) and stripped[start + 2:start + 3] in ("", "/"):
            cut = start + 2
    return stripped[cut:].lstrip("/") or "."


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _number(field: bytes, what: str, *, base256: bool = False) -> int:
    """A numeric header field: octal digits padded with spaces before and spaces or NULs
    after (what GNU tar, Go and tarfile all read alike), or positive base-256."""
    if base256 and field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    match = _OCTAL.fullmatch(field)
    if match is None:
        raise TarError(f"the header's {what} field {field!r} is not an octal number")
    return int(match[1], 8)


def _check_header(block: bytes) -> None:
    recorded = _number(block[148:156], "checksum")
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 0x20  # the checksum field counts as spaces
    signed = unsigned - 0x100 * (len(rest) - len(rest.translate(None, _HIGH)))
    if recorded not in (unsigned, signed):
        raise TarError(f"bad header checksum: the header says {recorded}, its bytes sum "
                       f"to {unsigned}; the stream is corrupt or not a tar archive")


def _header_name(block: bytes) -> bytes:
    """The name field, joined to the ustar prefix where GNU tar, Go and tarfile all read
    one; refused where they would not agree on the name."""
    name = _cstring(block[0:100])
    if block[257:263] != _USTAR:
        if block[345]:  # GNU and V7 headers have no prefix; tarfile would read one
            raise TarError("a non-ustar header holds bytes where a ustar prefix would be, "
                           "which tarfile takes as part of the name and GNU tar does not")
        return name
    prefix = _cstring(block[345:500])
    if prefix and block[508:512] == b"tar\0" and b"\0" not in block[345:476]:
        raise TarError("a star header's prefix runs into its time fields, where Go stops "
                       "reading it and GNU tar does not")
    return prefix + b"/" + name if prefix else name


@dataclass(frozen=True)
class _Pax:
    path: bytes | None
    linkpath: bytes | None
    size: int | None


def _pax_records(content: bytes) -> list[tuple[bytes, bytes]]:
    """`<length> <keyword>=<value>\\n` records filling the content exactly."""
    records: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(content):
        match = _RECORD_LENGTH.match(content, pos)
        if match is None:
            raise TarError("a pax header record does not start with its decimal length "
                           "and a space")
        length = int(match[1])
        end = pos + length
        if end <= match.end() or end > len(content) or content[end - 1] != 0x0A:
            raise TarError(f"a pax header record's length ({length}) lies: the record "
                           "does not end with a newline there")
        keyword, equals, value = content[match.end():end - 1].partition(b"=")
        if not equals or not keyword or b"\0" in keyword:
            raise TarError("a pax header record is not keyword=value (or its keyword holds "
                           "a NUL byte)")
        records.append((keyword, value))
        pos = end
    return records


def _pax(content: bytes, max_size: int) -> _Pax:
    """The records that change what is extracted; refused where a reader would extract
    something else (sparse maps, volumes, dump directories, names with NUL)."""
    values: dict[bytes, bytes] = {}
    for keyword, value in _pax_records(content):
        if keyword.startswith(b"GNU.sparse."):
            raise TarError("a sparse file (pax GNU.sparse records): its content is not "
                           "the bytes stored, so it cannot be judged or masked")
        if keyword.startswith(b"GNU.volume.") or keyword == b"GNU.dumpdir":
            raise TarError(f"a pax {_text(keyword)} record: multi-volume and incremental "
                           "archives are refused")
        if keyword in (b"path", b"linkpath", b"size"):
            if keyword in values:
                raise TarError(f"a pax header gives {_text(keyword)} twice")
            values[keyword] = value
    for keyword in (b"path", b"linkpath"):
        if b"\0" in values.get(keyword, b""):
            raise TarError(f"a pax {_text(keyword)} holds a NUL byte")
    if values.get(b"path") == b"":
        raise TarError("a pax path is empty (GNU tar keeps the header's name, Go uses none)")
    size = values.get(b"size")
    if size is not None and not _DECIMAL.fullmatch(size):
        raise TarError(f"a pax size {size!r} is not a decimal number")
    return _Pax(values.get(b"path"), values.get(b"linkpath"),
                _bounded(int(size), max_size) if size is not None else None)


def _bounded(size: int, max_size: int) -> int:
    if size > max_size:
        raise TarError(f"an entry of {size} bytes is over the bound of {max_size}")
    return size


def _long_name(content: bytes, what: str) -> bytes:
    name, _, rest = content.partition(b"\0")
    if rest.strip(b"\0"):
        raise TarError(f"a GNU long {what} holds a NUL byte inside it")
    return name


class _Pending:
    """The pax and long-name headers read for the entry that follows them."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.offset = -1
        self.long_name: bytes | None = None
        self.long_link: bytes | None = None
        self.pax: _Pax | None = None

    def add(self, typeflag: bytes, content: bytes, max_size: int) -> None:
        if typeflag == b"x":
            if self.pax is not None:
                raise TarError("two pax headers for one entry (readers keep different ones)")
            self.pax = _pax(content, max_size)
        elif typeflag == b"L":
            if self.long_name is not None:
                raise TarError("two GNU long names for one entry (readers keep different ones)")
            self.long_name = _long_name(content, "name")
        else:
            if self.long_link is not None:
                raise TarError("two GNU long links for one entry (readers keep different ones)")
            self.long_link = _long_name(content, "link")

    def entry(self, block: bytes, offset: int, max_size: int) -> Entry:
        pax = self.pax or _Pax(None, None, None)
        name = _one(pax.path, self.long_name, "name", "path")
        name = name if name is not None else _header_name(block)
        link = _one(pax.linkpath, self.long_link, "link", "linkpath")
        size = pax.size if pax.size is not None else _bounded(
            _number(block[124:136], "size", base256=True), max_size)
        typeflag = block[156:157]
        entry = Entry(_text(name), _kind(typeflag, name), size, _number(block[100:108], "mode"),
                      _text(link if link is not None else _cstring(block[157:257])), typeflag,
                      bytes(self.raw) + block, self.offset if self.raw else offset)
        _check_entry(entry)
        return entry


def _one(pax: bytes | None, gnu: bytes | None, what: str, keyword: str) -> bytes | None:
    """The pax value or the GNU long one, never both: GNU tar takes the pax one, Go the
    GNU one, tarfile whichever came first."""
    if pax is not None and gnu is not None:
        raise TarError(f"an entry with both a GNU long {what} and a pax {keyword}, which "
                       "GNU tar, Go and tarfile do not read alike")
    return pax if pax is not None else gnu


def _kind(typeflag: bytes, name: bytes) -> str:
    kind = KINDS.get(typeflag)
    if kind is None:
        what = _REFUSED.get(typeflag, f"an unknown typeflag {typeflag!r}")
        raise TarError(f"{what} is refused")
    if kind == "file" and name.endswith(b"/"):
        if typeflag != b"\0":
            raise TarError(f"a file named {_text(name)!r} ends with '/': GNU tar makes it a "
                           "directory, Go and tarfile a file")
        return "dir"  # V7's directories, as every reader takes them
    return kind


def _check_entry(entry: Entry) -> None:
    if not entry.name:
        raise TarError("an entry has an empty name")
    if entry.kind != "file" and entry.size:
        raise TarError(f"the {entry.kind} {entry.name!r} has {entry.size} bytes of "
                       "content, which GNU tar skips and Go and tarfile read as headers")
    if entry.kind in ("symlink", "hardlink") and not entry.linkname:
        raise TarError(f"the {entry.kind} {entry.name!r} has no target")


class TarReader:
    """Reads one tar stream pushed in chunks; see the module docstring for the events."""

    def __init__(self, *, max_size: int = MAX_SIZE, max_meta: int = MAX_META) -> None:
        self._max_size, self._max_meta = max_size, max_meta
        self._state = "header"  # header, meta, data, padding, end, finished
        self._buffer = bytearray()  # a header, meta content or padding being gathered
        self._need = BLOCK  # bytes the buffer is gathering
        self._offset = 0  # stream bytes consumed
        self._pending = _Pending()
        self._meta_type = b""  # the pax/long-name header whose content is being gathered
        self._meta_size = 0
        self._entry: Entry | None = None
        self._left = 0  # content bytes still to come
        self._failed: TarError | None = None

    def feed(self, data: bytes) -> list[Event]:
        """The events the bytes so far complete; TarError once the stream is refused
        (and on every call after)."""
        if self._failed is not None:
            raise self._failed
        if self._state == "finished":
            raise RuntimeError("the tar stream was already finished")
        events: list[Event] = []
        view = memoryview(data)
        pos = 0
        try:
            while pos < len(view):
                pos = self._step(view, pos, events)
        except TarError as error:
            self._failed = TarError(f"{error.reason} (after {self._offset} bytes of the "
                                    "stream)")
            raise self._failed from None
        return events

    def finish(self) -> list[Event]:
        """The end of the stream: End(b"") when it stopped, as GNU tar accepts, after an
        entry without an end block (or in zeros where the next header would be);
        TarError when it stopped inside a header, content or padding, or before any."""
        if self._failed is not None:
            raise self._failed
        state, self._state = self._state, "finished"
        if state == "finished":
            raise RuntimeError("the tar stream was already finished")
        if state == "end":
            return []
        blocks_read = self._offset > len(self._buffer)
        if (state == "header" and blocks_read and not self._pending.raw
                and not self._buffer.strip(b"\0")):
            return [End(bytes(self._buffer))]
        self._failed = TarError(f"{self._unfinished(state)} (after {self._offset} bytes of "
                                "the stream)")
        raise self._failed

    def _unfinished(self, state: str) -> str:
        if not self._offset:
            return "the stream is empty: not a tar archive"
        name = repr(self._entry.name) if self._entry else ""
        if state == "data":
            assert self._entry is not None
            return (f"the archive ends inside the content of {name}, "
                    f"{self._entry.size - self._left} of its {self._entry.size} bytes read")
        if state == "padding":
            return f"the archive ends inside the padding after {name}"
        if state == "meta":
            return "the archive ends inside a pax or long-name header"
        if self._pending.raw and not self._buffer:
            return "the archive ends after a pax or long-name header, before its entry"
        return "the archive ends inside a header block"

    def _step(self, view: memoryview, pos: int, events: list[Event]) -> int:
        """Consumes what the current state takes from view[pos:]; the new position."""
        if self._state == "data":
            return self._content(view, pos, events)
        if self._state == "end":
            tail = bytes(view[pos:])
            if tail.strip(b"\0"):
                raise TarError("non-zero bytes follow the end of the archive")
            self._offset += len(tail)
            events.append(End(tail))
            return len(view)
        take = min(self._need - len(self._buffer), len(view) - pos)
        self._buffer += view[pos:pos + take]
        self._offset += take
        if len(self._buffer) == self._need:
            gathered = bytes(self._buffer)
            self._buffer.clear()
            if self._state == "header":
                self._header(gathered, events)
            elif self._state == "meta":
                self._meta(gathered)
            else:
                self._padding(gathered, events)
        return pos + take

    def _content(self, view: memoryview, pos: int, events: list[Event]) -> int:
        take = min(self._left, len(view) - pos)
        self._left -= take
        self._offset += take
        assert self._entry is not None
        events.append(Data(self._entry, bytes(view[pos:pos + take]), not self._left))
        if not self._left:
            self._after_content()
        return pos + take

    def _after_content(self) -> None:
        assert self._entry is not None
        pad = -self._entry.size % BLOCK
        self._state, self._need = ("padding", pad) if pad else ("header", BLOCK)

    def _header(self, block: bytes, events: list[Event]) -> None:
        start = self._offset - BLOCK
        if block == ZERO_BLOCK:
            if self._pending.raw:
                raise TarError("the archive ends after a pax or long-name header, before "
                               "its entry")
            self._state = "end"
            events.append(End(block))
            return
        _check_header(block)
        typeflag = block[156:157]
        if typeflag in _META:
            size = _number(block[124:136], "size", base256=True)
            if size > self._max_meta:
                raise TarError(f"a pax or long-name header of {size} bytes is over the "
                               f"bound of {self._max_meta}")
            if not self._pending.raw:
                self._pending.offset = start
            self._pending.raw += block
            self._meta_type, self._meta_size = typeflag, size
            self._state, self._need = "meta", -(-size // BLOCK) * BLOCK
            if not self._need:
                self._meta(b"")
            return
        entry = self._pending.entry(block, start, self._max_size)
        self._pending = _Pending()
        self._entry = entry
        events.append(entry)
        if entry.kind == "file":
            self._state, self._left = "data", entry.size
            if not entry.size:
                events.append(Data(entry, b"", True))
                self._state = "header"

    def _meta(self, gathered: bytes) -> None:
        content = gathered[:self._meta_size]
        if gathered[self._meta_size:].strip(b"\0"):
            raise TarError("non-zero bytes pad a pax or long-name header")
        self._pending.add(self._meta_type, content, self._max_size)
        self._pending.raw += gathered
        self._state, self._need = "header", BLOCK

    def _padding(self, gathered: bytes, events: list[Event]) -> None:
        assert self._entry is not None
        if gathered.strip(b"\0"):
            raise TarError(f"non-zero bytes pad the content of {self._entry.name!r}")
        events.append(Padding(self._entry, gathered))
        self._state, self._need = "header", BLOCK

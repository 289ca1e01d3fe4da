"""The tar stream reader (extproc/codecs/tar_stream.py) against the real GNU `tar` binary
and Python's tarfile: the same entries whatever the cuts between chunks, the input back
byte for byte, a same-length content replacement that GNU tar extracts, and a reason for
every archive it refuses."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from extproc.codecs.tar_stream import (
    BLOCK,
    Data,
    End,
    Entry,
    Event,
    Padding,
    TarError,
    TarReader,
    extract_name,
)

GNU_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
LONG_DIR = "d" * 120  # over ustar's 100-byte name field
LONG_FILE = "f" * 150  # with LONG_DIR, a path over ustar's 255
UNICODE = "héllo wörld ✓.txt"


# --- helpers -------------------------------------------------------------------------------

def read(data: bytes, cuts: Iterable[int] = (), /, **limits: int) -> list[Event]:
    """Every event of `data` fed in pieces cut at `cuts`, then finished."""
    reader = TarReader(**limits)
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += reader.feed(data[start:cut])
        start = cut
    return events + reader.finish()


def bytewise(data: bytes) -> list[Event]:
    return read(data, range(1, len(data)))


def reemit(events: Iterable[Event], replace: Callable[[Entry, bytes], bytes] | None = None
           ) -> bytes:
    """The stream a relay sends on: headers, padding and end as read; each file's content
    whole, through `replace` when given (which must keep its length)."""
    out, held = bytearray(), bytearray()
    for event in events:
        if isinstance(event, Data):
            held += event.chunk
            if event.last:
                new = replace(event.entry, bytes(held)) if replace else bytes(held)
                assert len(new) == len(held)
                out += new
                held.clear()
        else:
            out += event.raw
    return bytes(out)


def entries(events: Iterable[Event]) -> list[Entry]:
    return [event for event in events if isinstance(event, Entry)]


def contents(events: Iterable[Event]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for event in events:
        if isinstance(event, Data):
            found[event.entry.name] = found.get(event.entry.name, b"") + event.chunk
    return found


def view(events: Sequence[Event]) -> list[tuple[str, str, int, str, bytes]]:
    """What tarfile tells of each member, as this reader read it."""
    members: list[tuple[str, str, int, str, bytes]] = []
    for event in events:
        if isinstance(event, Entry):
            name = event.name.rstrip("/") if event.kind == "dir" else event.name
            members.append((name, event.kind, event.size, event.linkname, b""))
        elif isinstance(event, Data):
            name, kind, size, link, content = members[-1]
            members[-1] = (name, kind, size, link, content + event.chunk)
    return members


TARFILE_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
                 tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
                 tarfile.CHRTYPE: "chardev", tarfile.BLKTYPE: "blockdev", tarfile.FIFOTYPE: "fifo"}


def tarfile_view(data: bytes) -> list[tuple[str, str, int, str, bytes]]:
    """The members as tarfile's stream mode ('r|') reads them."""
    members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        for member in archive:
            handle = archive.extractfile(member) if member.isreg() else None
            members.append((member.name, TARFILE_KINDS[member.type], member.size,
                            member.linkname, handle.read() if handle else b""))
    return members


def gnu_tar(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tar", *map(str, args)], cwd=cwd, env=GNU_ENV, capture_output=True,
                          text=True, check=False)


def tree(root: Path, *, long_paths: bool = True) -> Path:
    """Files for GNU tar to archive: empty and non-empty files (one a block exactly), an
    empty directory, a symlink and a hard link, a unicode name, and with `long_paths` names
    over 100 and 255 bytes and a symlink target over 100."""
    top = root / "top"
    (top / "empty-dir").mkdir(parents=True)
    (top / "empty.txt").write_bytes(b"")
    (top / "a.txt").write_text("password=hunter2\n")
    (top / "block.bin").write_bytes(bytes(range(256)) * 2)
    (top / UNICODE).write_text("unicode\n")
    (top / "link").symlink_to("a.txt")
    os.link(top / "a.txt", top / "hard")
    if long_paths:
        (top / LONG_DIR).mkdir()
        (top / LONG_DIR / LONG_FILE).write_text("deep\n" * 300)
        (top / "long-link").symlink_to(f"{LONG_DIR}/{LONG_FILE}")
    return top


def gnu_archive(tmp_path: Path, fmt: str, *extra: str) -> bytes:
    long_paths = fmt not in ("ustar", "v7")
    tree(tmp_path / "src", long_paths=long_paths)
    archive = tmp_path / f"{fmt}.tar"
    made = gnu_tar(f"--format={fmt}", "--sort=name", *extra, "-cf", archive, "top",
                   cwd=tmp_path / "src")
    assert made.returncode == 0, made.stderr
    return archive.read_bytes()


def header(name: str, *, typeflag: bytes = b"0", size: int = 0, linkname: str = "",
           fmt: Literal[0, 1, 2] = tarfile.USTAR_FORMAT) -> bytes:
    """One header block as tarfile writes it (no pax or long-name blocks)."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = typeflag, size, linkname
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def patch(block: bytes, at: int, new: bytes) -> bytes:
    """A header block with `new` written at `at`, its checksum made right again."""
    changed = block[:at] + new + block[at + len(new):]
    blank = changed[:148] + b" " * 8 + changed[156:]
    return blank[:148] + b"%06o\0 " % sum(blank) + blank[156:]


def member(block: bytes, content: bytes = b"") -> bytes:
    return block + content + bytes(-len(content) % BLOCK)


END = bytes(2 * BLOCK)


def refused(data: bytes) -> str:
    with pytest.raises(TarError) as caught:
        read(data)
    return caught.value.reason


# --- archives GNU tar writes ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["gnu", "oldgnu", "pax", "posix", "ustar", "v7"])
def test_gnu_tar_archives_read_as_gnu_tar_and_tarfile_read_them(tmp_path: Path, fmt: str
                                                                ) -> None:
    data = gnu_archive(tmp_path, fmt)
    events = read(data)
    listed = gnu_tar("--quoting-style=literal", "-tf", tmp_path / f"{fmt}.tar")
    assert [e.name for e in entries(events)] == listed.stdout.splitlines()
    assert view(events) == tarfile_view(data)
    assert reemit(events) == data
    assert entries(bytewise(data)) == entries(events)
    assert contents(bytewise(data)) == contents(events)
    kinds = {e.name.rstrip("/").removeprefix("top/"): e.kind for e in entries(events)}
    assert kinds["empty-dir"] == "dir" and kinds["link"] == "symlink"
    assert kinds["hard"] == "hardlink" and kinds[UNICODE] == "file"
    assert contents(events)["top/empty.txt"] == b""
    if fmt not in ("ustar", "v7"):
        deep = f"top/{LONG_DIR}/{LONG_FILE}"
        assert len(deep) > 255 and contents(events)[deep] == b"deep\n" * 300
        assert next(e for e in entries(events) if e.name == "top/long-link").linkname == deep[4:]


def test_ustar_names_over_100_bytes_join_the_prefix(tmp_path: Path) -> None:
    deep = f"top/{'p' * 60}/{'q' * 60}"
    (tmp_path / "src" / deep).mkdir(parents=True)
    (tmp_path / "src" / deep / "x.txt").write_text("in the prefix\n")
    made = gnu_tar("--format=ustar", "-cf", tmp_path / "u.tar", "top", cwd=tmp_path / "src")
    assert made.returncode == 0, made.stderr
    data = (tmp_path / "u.tar").read_bytes()
    assert contents(read(data)) == {f"{deep}/x.txt": b"in the prefix\n"}
    assert any(data[at + 345:at + 349] == b"top/" for at in range(0, len(data), BLOCK))
    assert f"{deep}/" in [e.name for e in entries(read(data))]
    assert view(read(data)) == tarfile_view(data)


def test_gnu_tar_pads_to_its_record_size_and_the_end_carries_it(tmp_path: Path) -> None:
    data = gnu_archive(tmp_path, "gnu", "--blocking-factor=20")
    events = read(data)
    assert len(data) % (20 * BLOCK) == 0
    ends = [e for e in events if isinstance(e, End)]
    assert ends[0].raw == bytes(BLOCK) and sum(len(e.raw) for e in ends) > 2 * BLOCK
    assert isinstance(events[-1], End)


def test_events_come_as_soon_as_their_bytes_do(tmp_path: Path) -> None:
    """A name is known before any of its content; content before its block is whole."""
    data = gnu_archive(tmp_path, "gnu")
    reader = TarReader()
    first = reader.feed(data[:BLOCK])
    assert [type(e) for e in first] == [Entry]
    entry = first[0]
    assert isinstance(entry, Entry) and entry.name == "top/"
    second = reader.feed(data[BLOCK:2 * BLOCK + 3])  # the next header and 3 content bytes
    assert [(type(e), getattr(e, "chunk", None)) for e in second] == [
        (Entry, None), (Data, b"pas")]
    assert second[0] == entries(read(data))[1] and second[0].name == "top/a.txt"


# --- archives tarfile writes, and random ones ----------------------------------------------

def tarfile_archive(members: Sequence[tuple[str, str, bytes, str]], fmt: int) -> bytes:
    """An archive of (name, kind, content, link target) members in tarfile's `fmt`."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8") as archive:
        for name, kind, content, target in members:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o640, 1_700_000_000
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE,
                         "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname, info.size = target, len(content) if kind == "file" else 0
            archive.addfile(info, io.BytesIO(content) if kind == "file" else None)
    return out.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tarfile_archives_with_long_and_unicode_names(fmt: int) -> None:
    deep = f"{LONG_DIR}/{LONG_FILE}" if fmt != tarfile.USTAR_FORMAT else f"{LONG_DIR}/x"
    data = tarfile_archive([
        ("dir", "dir", b"", ""), (deep, "file", b"x" * 1000, ""),
        (UNICODE, "file", b"", ""), ("to-deep", "symlink", b"", deep[-100:]),
        ("again", "hardlink", b"", deep[-100:]),
    ], fmt)
    events = read(data)
    assert view(events) == tarfile_view(data)
    assert reemit(events) == data
    assert entries(bytewise(data)) == entries(events)


SEGMENT = st.text(st.characters(codec="utf-8", exclude_characters="/\0"),
                  min_size=1, max_size=60)
NAME = st.lists(SEGMENT, min_size=1, max_size=6).map("/".join)
MEMBER = st.tuples(NAME, st.sampled_from(["file", "file", "dir", "symlink", "hardlink"]),
                   st.one_of(st.binary(max_size=1100), st.sampled_from(
                       [b"", b"x" * 511, b"y" * 512, b"z" * 513])), NAME)
FORMAT = st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])


@pytest.mark.slow
@settings(derandomize=True, database=None, max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MEMBER, min_size=0, max_size=6), FORMAT, st.data())
def test_random_archives_read_as_tarfile_reads_them_whatever_the_cuts(
    members: list[tuple[str, str, bytes, str]], fmt: int, draw: st.DataObject
) -> None:
    try:
        data = tarfile_archive(members, fmt)
    except ValueError:  # a name ustar cannot hold
        assume(False)
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=30), label="cuts")
    events = read(data, cuts)
    assert view(events) == tarfile_view(data)
    assert reemit(events) == data
    whole = read(data)
    assert entries(events) == entries(whole)
    assert [e for e in events if isinstance(e, Padding)] == [
        e for e in whole if isinstance(e, Padding)]


def test_a_byte_at_a_time_gives_the_same_events_but_for_chunk_cuts(tmp_path: Path) -> None:
    data = gnu_archive(tmp_path, "pax")
    whole, single = read(data), bytewise(data)
    assert entries(single) == entries(whole) and contents(single) == contents(whole)
    assert reemit(single) == data
    assert all(len(e.chunk) <= 1 for e in single if isinstance(e, Data))


def test_every_file_ends_with_one_last_chunk_even_empty() -> None:
    data = tarfile_archive([("e", "file", b"", ""), ("d", "dir", b"", ""),
                            ("f", "file", b"abc", "")], tarfile.GNU_FORMAT)
    events = read(data)
    lasts = [(e.entry.name, e.chunk) for e in events if isinstance(e, Data) and e.last]
    assert lasts == [("e", b""), ("f", b"abc")]
    assert [e.raw for e in events if isinstance(e, Padding)] == [bytes(BLOCK - 3)]


# --- the same-length replacement a masking relay makes ---------------------------------------

def stars(entry: Entry, content: bytes) -> bytes:
    return bytes(c if c in b"\n" else 0x2A for c in content)


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_content_replaced_at_the_same_length_is_an_archive_gnu_tar_extracts(
    tmp_path: Path, fmt: str
) -> None:
    data = gnu_archive(tmp_path, fmt)
    events = read(data)
    masked = tmp_path / "masked.tar"
    masked.write_bytes(reemit(events, stars))
    listed = gnu_tar("--quoting-style=literal", "-tf", masked)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [e.name for e in entries(events)]
    out = tmp_path / "out"
    out.mkdir()
    extracted = gnu_tar("-xf", masked, "-C", out)
    assert extracted.returncode == 0, extracted.stderr
    for name, content in contents(events).items():
        assert (out / name).read_bytes() == stars(entries(events)[0], content), name
    assert (out / "top/a.txt").read_text() == "****************\n"
    assert (out / "top/link").is_symlink() and (out / "top/hard").samefile(out / "top/a.txt")


# --- names as GNU tar extracts them ----------------------------------------------------------

@pytest.mark.parametrize(("name", "path"), [
    ("a/b", "a/b"), ("/abs/x", "abs/x"), ("///abs", "abs"), ("./dot/x", "./dot/x"),
    ("dir/", "dir"), ("a/../b", "b"), ("../../up", "up"), ("dir/../..//z", "z"),
    ("q/..", "."), ("..", "."), ("a..b/..c", "a..b/..c"), ("/", "."),
])
def test_extract_name_is_gnu_tars_safer_name_suffix(name: str, path: str) -> None:
    assert extract_name(name) == path


def test_gnu_tar_extracts_where_entry_path_says(tmp_path: Path) -> None:
    names = ["/abs/x", "./dot/y", "x//y", "plain"]
    data = tarfile_archive([(n, "file", n.encode(), "") for n in names], tarfile.PAX_FORMAT)
    (tmp_path / "in.tar").write_bytes(data)
    (tmp_path / "out").mkdir()
    assert gnu_tar("-xf", tmp_path / "in.tar", "-C", tmp_path / "out").returncode == 0
    for entry in entries(read(data)):
        assert (tmp_path / "out" / entry.path).read_bytes() == entry.name.encode()


# --- the end of the archive ------------------------------------------------------------------

def test_an_archive_without_end_blocks_ends_at_its_last_entry_as_gnu_tar_accepts() -> None:
    data = tarfile_archive([("f", "file", b"abc", "")], tarfile.USTAR_FORMAT)
    cut = data[:2 * BLOCK]
    assert read(cut)[-1] == End(b"") and reemit(read(cut)) == cut
    assert read(data[:2 * BLOCK + 100])[-1] == End(bytes(100))  # zeros short of a block
    assert read(data[:3 * BLOCK])[-1] == End(bytes(BLOCK))  # one zero block: GNU warns


def test_the_end_is_refused_where_it_is_not_whole() -> None:
    data = tarfile_archive([("f", "file", b"abc" * 200, "")], tarfile.USTAR_FORMAT)
    assert refused(b"") == "the stream is empty: not a tar archive (after 0 bytes of the stream)"
    assert "inside a header block" in refused(data[:100])
    assert "inside the content of 'f', 88 of its 600 bytes" in refused(data[:600])
    assert "inside the padding after 'f'" in refused(data[:BLOCK + 700])
    small = tarfile_archive([("f", "file", b"abc", "")], tarfile.USTAR_FORMAT)
    assert "inside a header block" in refused(small[:2 * BLOCK] + small[:200])


def test_bytes_after_the_end_must_be_zeros() -> None:
    data = tarfile_archive([("f", "file", b"abc", "")], tarfile.USTAR_FORMAT)
    assert "non-zero bytes follow the end" in refused(data + b"junk")
    lone = data[:2 * BLOCK] + bytes(BLOCK) + data[:2 * BLOCK] + END  # busybox reads past it
    assert "non-zero bytes follow the end" in refused(lone)


def test_a_refused_reader_stays_refused() -> None:
    reader = TarReader()
    with pytest.raises(TarError):
        reader.feed(b"x" * BLOCK)
    with pytest.raises(TarError):
        reader.feed(END)
    with pytest.raises(TarError):
        reader.finish()


# --- what is refused, and why ----------------------------------------------------------------

def test_a_flipped_checksum_byte_is_refused() -> None:
    data = bytearray(tarfile_archive([("f", "file", b"abc", "")], tarfile.USTAR_FORMAT))
    data[150] ^= 0x01
    assert "bad header checksum" in refused(bytes(data))
    data[150] = ord("x")
    assert "checksum field" in refused(bytes(data))


def test_a_signed_checksum_is_accepted_as_gnu_tar_accepts_it() -> None:
    block = bytearray(header("é", typeflag=b"5"))
    blank = block[:148] + b" " * 8 + block[156:]
    signed = sum(b - 256 if b > 127 else b for b in blank)
    block[148:156] = b"%06o\0 " % signed
    assert signed != sum(blank)
    assert entries(read(bytes(block) + END))[0].name == "é/"


def test_a_pax_record_whose_length_lies_is_refused() -> None:
    data = tarfile_archive([(LONG_DIR + "/x", "file", b"abc", "")], tarfile.PAX_FORMAT)
    record = f"{len(LONG_DIR) + 12} path=".encode()
    assert record in data
    lying = data.replace(record, f"{len(LONG_DIR) + 13} path=".encode())
    assert "pax header record's length (133) lies" in refused(lying)
    short = data.replace(record, f"{len(LONG_DIR) + 11} path=".encode())
    assert "lies" in refused(short)
    no_space = data.replace(record, f"{len(LONG_DIR) + 12}:path=".encode())
    assert "decimal length and a space" in refused(no_space)


def pax_member(records: bytes, block: bytes) -> bytes:
    return member(header("PaxHeaders/x", typeflag=b"x", size=len(records)), records) + block


def pax_record(keyword: bytes, value: bytes) -> bytes:
    """`<length> keyword=value\n`, the length counting its own digits."""
    body = b" " + keyword + b"=" + value + b"\n"
    length = len(body)
    while length != len(body) + len(str(length)):
        length = len(body) + len(str(length))
    return str(length).encode() + body


@pytest.mark.parametrize(("records", "reason"), [
    (pax_record(b"path", b"a\0b"), "pax path holds a NUL byte"),
    (pax_record(b"path", b""), "pax path is empty"),
    (pax_record(b"path", b"a") + pax_record(b"path", b"b"), "gives path twice"),
    (pax_record(b"size", b"12x"), "is not a decimal number"),
    (pax_record(b"GNU.sparse.major", b"1"), "sparse file"),
    (pax_record(b"GNU.dumpdir", b"x"), "multi-volume and incremental"),
    (pax_record(b"pa\0th", b"x"), "not keyword=value"),
    (b"6 abc\n", "not keyword=value"),
    (pax_record(b"comment", b"x") + b"\0\0", "decimal length and a space"),
])
def test_malformed_pax_headers_are_refused(records: bytes, reason: str) -> None:
    assert reason in refused(pax_member(records, member(header("f"))) + END)


def test_pax_records_apply_and_unknown_ones_are_ignored() -> None:
    records = (pax_record(b"path", "wörld/".encode() + b"x" * 300)
               + pax_record(b"size", b"5") + pax_record(b"SCHILY.xattr.user.a", b"v\0w")
               + pax_record(b"linkpath", b"ignored for files"))
    data = pax_member(records, member(header("short", size=0), b"hello")) + END
    entry = entries(read(data))[0]
    assert (entry.name, entry.size) == ("wörld/" + "x" * 300, 5)
    assert contents(read(data)) == {entry.name: b"hello"}


def test_sparse_files_from_gnu_tar_are_refused(tmp_path: Path) -> None:
    holey = tmp_path / "holey"
    with holey.open("wb") as out:
        out.truncate(1 << 20)
        out.seek(1 << 20)
        out.write(b"tail")
    assert holey.stat().st_blocks * 512 < holey.stat().st_size, "the file system has no holes"
    for fmt, reason in (("gnu", "a GNU sparse file is refused"),
                        ("pax", "a sparse file (pax GNU.sparse records)")):
        made = gnu_tar("--sparse", f"--format={fmt}", "-cf", f"{fmt}.tar", "holey",
                       cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert reason in refused((tmp_path / f"{fmt}.tar").read_bytes())


def test_a_nul_inside_a_gnu_long_name_is_refused() -> None:
    long = long_name("a" * 120 + "\0" + "b")
    assert "GNU long name holds a NUL byte" in refused(long + member(header("f")) + END)


def long_name(name: str, typeflag: bytes = b"L") -> bytes:
    return member(header("././@LongLink", typeflag=typeflag, size=len(name) + 1,
                         fmt=tarfile.GNU_FORMAT), name.encode() + b"\0")


@pytest.mark.parametrize(("data", "reason"), [
    (member(header("f", typeflag=b"Z")), "an unknown typeflag b'Z' is refused"),
    (member(header("g", typeflag=b"g", size=10), b"9 a=bcde\n\0"), "pax global header"),
    (member(header("x", typeflag=b"X", size=0)) + member(header("f")), "Solaris"),
    (member(header("v", typeflag=b"V")), "a volume label is refused"),
    (member(header("m", typeflag=b"M")), "a multi-volume continuation is refused"),
    (member(header("d", typeflag=b"D")), "incremental dump directory"),
    (member(patch(header("d", typeflag=b"5"), 124, b"00000000012\0"), b"hello dir\n"),
     "the dir 'd/' has 10 bytes of content"),
    (member(header("f/", size=3), b"abc"), "ends with '/'"),
    (member(header("")), "an entry has an empty name"),
    (long_name("") + member(header("f")), "an entry has an empty name"),
    (member(header("s", typeflag=b"2")), "the symlink 's' has no target"),
    (long_name("a" * 200) + long_name("b" * 200) + member(header("f")), "two GNU long names"),
    (long_name("a" * 200) + pax_member(pax_record(b"path", b"p"), member(header("f"))),
     "both a GNU long name and a pax path"),
    (pax_member(b"", b"") + pax_member(b"", member(header("f"))), "two pax headers"),
    (long_name("a" * 200), "after a pax or long-name header, before its entry"),
    (member(header("f", size=3), b"abc")[:-1] + b"!", "non-zero bytes pad the content"),
    (patch(header("f"), 124, b"      \0     "), "size field"),
    (patch(header("f"), 124, b"\0"), "size field"),
    (patch(header("f"), 124, b"\xff" * 12), "size field"),
    (patch(patch(header("f"), 257, b"ustar  \0"), 345, b"p"), "ustar prefix"),
])
def test_what_readers_would_read_differently_is_refused(data: bytes, reason: str) -> None:
    assert reason in refused(data + END)


def test_sizes_beyond_the_bound_are_refused() -> None:
    data = tarfile_archive([("f", "file", b"x" * 2000, "")], tarfile.PAX_FORMAT)
    assert "2000 bytes is over the bound of 1000" in refused_with(data, max_size=1000)
    long = tarfile_archive([("n" * 3000, "file", b"", "")], tarfile.GNU_FORMAT)
    assert "long-name header of 3001 bytes" in refused_with(long, max_meta=1000)
    big = header("big", size=1 << 40, fmt=tarfile.GNU_FORMAT)
    assert big[124] == 0x80  # base-256: octal stops at 8 GiB
    assert "1099511627776 bytes is over the bound" in refused_with(big)
    assert entries(TarReader(max_size=1 << 41).feed(big))[0].size == 1 << 40


def refused_with(data: bytes, **limits: int) -> str:
    with pytest.raises(TarError) as caught:
        read(data, **limits)
    return caught.value.reason

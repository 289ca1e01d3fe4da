"""PostgreSQL's client encodings, as the front reads them: which, with what, and why not.

A session's client_encoding goes to the database as the session's own, and the database
converts; the front reads every text of the session (statements, names, rows, errors,
COPY's lines) and writes its own (refusals, masked values) in that same encoding. The
other design, the front transcoding at the client's edge and keeping the database in
UTF8, would have it convert what the database converts today (text in binary values,
text-format parameters, COPY's data in both directions, errors raised mid-row),
type by type: one reading more to get wrong. Here there is one conversion, the
database's, and the front's only duty is to read bytes as it does. The policy sees str.

Read: the encodings whose bytes below 0x80 are always ASCII characters, those
PostgreSQL allows as a database's encoding, each with the Python codec that reads every
byte sequence PostgreSQL reads as its conversion does (checked against a server sequence
by sequence, tests/e2e/test_postgres_encodings_e2e.py). Where they differ, `Encoding`
corrects the codec: EUC_JP (PostgreSQL's is eucJP-ms: CP932's symbols, NEC's row 13,
IBM's extensions), EUC_KR (two codes Python lacks), EUC_JIS_2004 (five symbols). Bytes
the front does not read get 22021, as PostgreSQL answers bytes it does not read; a
sequence only the database refuses (Python's euc_jis_2004 reads JIS X 0212 codes that
its JIS X 0213 leaves empty) is refused there, and what holds it never runs.

Refused at login:
- the client-only encodings (SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, JOHAB, GB18030):
  their two-byte characters can end in an ASCII byte, a quote or a backslash, so a
  reader that splits one character otherwise than the database reads another statement;
- MULE_INTERNAL and EUC_TW: no Python codec reads them.
SQL_ASCII (bytes as they are, read in the database's encoding, which the front does not
know) is taken as UTF8: the database is asked for UTF8 and tells the client so.

The session's encoding is its wire's: every message the session's tasks read or write
(messages.py), and the values it masks, use `wire()`, which the front sets for the
session's life (`speaking`). A context variable rather than an argument through every
reader and writer: each connection is a task of its own, whose context no other sees.

A session may change its encoding midway (SET client_encoding, SET NAMES, set_config,
RESET): the front follows the database (Wire). The database reads each message in the
encoding in effect as it reads it, and reports a change just before its next Ready; in
between, the front reads only what every encoding the session may be in reads alike
(Unsettled: ASCII, and bytes those encodings agree on), and refuses the rest as bytes
not read (22021), so that it never reads a text otherwise than the database. A change
to an encoding it does not read is refused (as at login); one the database reports
that no statement announced (a function's own set_config) ends the session.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from extproc.codecs.refusal import Refused
from extproc.interpret.sql.effects import UNNAMED_SETTING

# Bytes 0x80-0xFF, which an ASCII-safe encoding never reads as ASCII characters.
_HIGH = bytes(range(0x80, 0x100))


class Encoding:
    """One encoding's texts as PostgreSQL reads and writes them: a Python codec and its
    corrections, each byte sequence PostgreSQL reads otherwise than Python (or that
    only PostgreSQL reads) with the character it reads; `unwritten`, characters the
    codec would write as bytes that read back as another (Python's euc_jp writes ¥ as a
    backslash)."""

    def __init__(self, name: str, python: str, corrections: Mapping[bytes, str] | None = None,
                 unwritten: str = "") -> None:
        self.name, self.python = name, python
        corrections = dict(corrections or {})
        read: dict[int, str] = {}
        self._extra: dict[bytes, str] = {}
        for sequence, char in corrections.items():
            try:
                read[ord(sequence.decode(python))] = char
            except UnicodeDecodeError:
                self._extra[sequence] = char
        self._read = read
        self._written = {char: sequence for sequence, char in corrections.items()}
        self._unwritten = {chr(c) for c in read} | set(unwritten)
        special = sorted(self._unwritten | set(self._written))
        self._special = re.compile(f"([{re.escape(''.join(special))}])") if special else None
        # A multibyte codec is checked to read no ASCII character out of other bytes
        # (Python's euc_jp reads 0x8FA2B7 as `~`, which PostgreSQL refuses).
        self._checked = python != "utf-8"
        self._errors = {"strict": "strict", "replace": "replace"}
        if self._extra:
            for mode in self._errors:
                handler = f"tollgate.postgres.{name}.{mode}"
                codecs.register_error(handler, self._reader(mode == "replace"))
                self._errors[mode] = handler

    def __repr__(self) -> str:
        return f"Encoding({self.name})"

    def decode(self, data: bytes, errors: str = "strict") -> str:
        """`data` as PostgreSQL reads it; strict: UnicodeDecodeError where it would
        refuse it, replace: U+FFFD there."""
        text = data.decode(self.python, self._errors[errors])
        if self._read:
            text = text.translate(self._read)
        if self._checked and errors == "strict" and \
                len(text.encode("ascii", "ignore")) != len(data.translate(None, _HIGH)):
            raise self._misread(data)
        return text

    def encode(self, text: str, errors: str = "strict") -> bytes:
        """`text` as bytes PostgreSQL reads as it; strict: UnicodeEncodeError for a
        character it cannot write, replace: `?` there."""
        if self._special is None:
            return text.encode(self.python, errors)
        out, at = [], 0
        for piece in self._special.split(text):
            if len(piece) == 1 and (piece in self._written or piece in self._unwritten):
                written = self._written.get(piece)
                if written is None and errors == "strict":
                    raise UnicodeEncodeError(self.name, text, at, at + 1,
                                             "PostgreSQL reads no byte sequence as it")
                out.append(written or b"?")
            elif piece:
                out.append(piece.encode(self.python, errors))
            at += len(piece)
        return b"".join(out)

    def _misread(self, data: bytes) -> UnicodeDecodeError:
        """Where the codec read bytes above 0x7F as an ASCII character, which PostgreSQL
        never does in these encodings: the first such character's bytes."""
        decoder = codecs.getincrementaldecoder(self.python)(self._errors["strict"])
        start = 0
        for at in range(len(data)):
            read = decoder.decode(data[at:at + 1])
            if read and data[start] >= 0x80 and any(c.isascii() for c in read):
                break
            if read:
                start = at + 1
        return UnicodeDecodeError(self.python, data, start, at + 1,
                                  "bytes read as an ASCII character that are not one")

    def _reader(self, replace: bool) -> Callable[[UnicodeError], tuple[str, int]]:
        """The codec's error handler: a sequence only PostgreSQL reads, read as it."""

        def read(problem: UnicodeError) -> tuple[str, int]:
            if isinstance(problem, UnicodeDecodeError):
                start, data = problem.start, problem.object
                for size in (2, 3):
                    char = self._extra.get(bytes(data[start:start + size]))
                    if char is not None:
                        return char, start + size
                if replace:
                    return "\ufffd", problem.end
            raise problem

        return read


def _row13(trail: int) -> bytes:
    """The Shift_JIS (CP932) form of JIS X 0208 row 13's cell `trail` (EUC's 0xAD row)."""
    second = trail - 0x61
    return bytes([0x87, second + (second >= 0x7F)])


# IBM's extensions that PostgreSQL's EUC_JP reads at 0x8FF3F3-0x8FF3FE, 0x8FF4A1-0x8FF4FE
# (eucJP-ms; the others it reads at their JIS X 0208 or 0212 codes), in order.
_IBM = (
    "\u2170\u2171\u2172\u2173\u2174\u2175\u2176\u2177\u2178\u2179\u2160\u2161\u2162\u2163"
    "\u2164\u2165\u2166\u2167\u2168\u2169\uff07\uff02\u3231\u2116\u2121\u70bb\u4efc\u50f4"
    "\u51ec\u5307\u5324\ufa0e\u548a\u5759\ufa0f\ufa10\u589e\u5bec\u5cf5\u5d53\ufa11\u5fb7"
    "\u6085\u6120\u654e\u663b\u6665\ufa12\uf929\u6801\ufa13\ufa14\u6a6b\u6ae2\u6df8\u6df2"
    "\u7028\ufa15\ufa16\u7501\u7682\u769e\ufa17\u7930\ufa18\ufa19\ufa1a\ufa1b\u7ae7\ufa1c"
    "\ufa1d\u7da0\u7dd6\ufa1e\u8362\ufa1f\u85b0\ufa20\ufa21\u8807\ufa22\u8b7f\u8cf4\u8d76"
    "\ufa23\ufa24\ufa25\u90de\ufa26\u9115\ufa27\ufa28\u9592\uf9dc\ufa29\u973b\u974d\u9751"
    "\ufa2a\ufa2b\ufa2c\u999e\u9ad9\u9b72\ufa2d\u9ed1"
)


def _euc_jp() -> dict[bytes, str]:
    """Where PostgreSQL's EUC_JP reads otherwise than Python's euc_jp: its maps are built
    from CP932's, so the symbols of JIS X 0208 that CP932 reads as fullwidth forms are
    those, as is JIS X 0212's broken bar; NEC's row 13 (circled numbers, Roman numerals,
    units) reads as CP932 reads it; IBM's extensions missing from JIS X 0212 follow."""
    corrections = {
        b"\xa1\xc1": "\uff5e", b"\xa1\xc2": "\u2225", b"\xa1\xdd": "\uff0d",
        b"\xa1\xf1": "\uffe0", b"\xa1\xf2": "\uffe1", b"\xa2\xcc": "\uffe2",
        b"\x8f\xa2\xc3": "\uffe4",
    }
    for trail in range(0xA1, 0xFF):
        with contextlib.suppress(UnicodeDecodeError):
            corrections[bytes([0xAD, trail])] = _row13(trail).decode("cp932")
    codes = [bytes([0x8F, 0xF3, t]) for t in range(0xF3, 0xFF)] + [
        bytes([0x8F, 0xF4, t]) for t in range(0xA1, 0xFF)]
    corrections.update(zip(codes, _IBM, strict=True))
    return corrections


UTF8 = Encoding("UTF8", "utf-8")
# The encodings read, by PostgreSQL's name: every ASCII-safe one it allows a database.
_READ = {e.name: e for e in (
    UTF8,
    *(Encoding(f"LATIN{n}", f"iso8859_{part}") for n, part in (
        (1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (6, 10), (7, 13), (8, 14), (9, 15),
        (10, 16))),
    *(Encoding(f"ISO_8859_{n}", f"iso8859_{n}") for n in (5, 6, 7, 8)),
    *(Encoding(f"WIN{n}", f"cp{n}") for n in (866, 874, *range(1250, 1259))),
    Encoding("KOI8R", "koi8_r"), Encoding("KOI8U", "koi8_u"),
    Encoding("EUC_CN", "gb2312"),
    Encoding("EUC_KR", "euc_kr", {b"\xa2\xe8": "\u327e", b"\xa4\xd4": "\u3164"}),
    Encoding("EUC_JP", "euc_jp", _euc_jp(), unwritten="\u00a5\u203e"),
    Encoding("EUC_JIS_2004", "euc_jis_2004", {
        b"\xa1\xb1": "\u203e", b"\xa1\xbd": "\u2014", b"\xa1\xef": "\u00a5",
        b"\xa2\xd6": "\uff5f", b"\xa2\xd7": "\uff60"}),
)}
_CLIENT_ONLY = ("a client-only encoding whose two-byte characters can end in an ASCII "
                "byte (a quote or a backslash): the database would read a statement that "
                "tollgate read otherwise")
_NO_CODEC = "no codec here reads it as PostgreSQL does"
# Why the others are not: every encoding PostgreSQL knows is read, refused, or SQL_ASCII.
_REFUSED = {
    **dict.fromkeys(("SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "JOHAB", "GB18030"),
                    _CLIENT_ONLY),
    "MULE_INTERNAL": _NO_CODEC, "EUC_TW": _NO_CODEC,
}
SQL_ASCII = "SQL_ASCII"
# The names PostgreSQL takes for each (pg_encname_tbl), cleaned as it cleans them.
_ALIASES = {
    **{_name.lower().replace("_", ""): _name for _name in (*_READ, *_REFUSED, SQL_ASCII)},
    **{f"iso8859{n}": f"LATIN{latin}" for n, latin in (
        (1, 1), (2, 2), (3, 3), (4, 4), (9, 5), (10, 6), (13, 7), (14, 8), (15, 9),
        (16, 10))},
    **{f"windows{n}": f"WIN{n}" for n in (866, 874, *range(1250, 1259))},
    **{f"{prefix}{n}": name for n, name in ((932, "SJIS"), (936, "GBK"), (949, "UHC"),
                                             (950, "BIG5")) for prefix in ("win", "windows")},
    "abc": "WIN1258", "tcvn": "WIN1258", "tcvn5712": "WIN1258", "vscii": "WIN1258",
    "alt": "WIN866", "win": "WIN1251", "koi8": "KOI8R", "unicode": "UTF8",
    "mskanji": "SJIS", "shiftjis": "SJIS",
}
_NAME_LIMIT = 63  # NAMEDATALEN - 1: a longer name PostgreSQL does not look up


class UnreadEncoding(ValueError):
    """A client_encoding the front does not read, and why."""


def named(value: str) -> str | None:
    """PostgreSQL's name of the encoding `value` names, as it looks names up (letters and
    digits only, any case: 'latin-9', "'utf-8'"); None: no encoding it knows."""
    if len(value) > _NAME_LIMIT:
        return None
    return _ALIASES.get("".join(c for c in value.lower() if c.isascii() and c.isalnum()))


def readable(value: str) -> Encoding | None:
    """The encoding `value` names, if the front reads it (a COPY's ENCODING option)."""
    name = named(value)
    return None if name is None else _READ.get(name)


def for_session(value: str | None) -> Encoding:
    """The encoding a session asking for client_encoding `value` (None: none) speaks;
    UnreadEncoding, saying why and what is read, when the front does not read it."""
    name = UTF8.name if value is None else named(value)
    if name == SQL_ASCII:
        return UTF8
    if name in _READ:
        return _READ[name]
    raise UnreadEncoding(f"client_encoding {_why_not(value or '')}. It reads "
                  f"{', '.join(_READ)} (and SQL_ASCII, as UTF8): connect with "
                  "client_encoding=UTF8 (PGCLIENTENCODING=UTF8)")


def _why_not(value: str) -> str:
    """`value`, and why the front does not read it."""
    name = named(value)
    why = ("not an encoding PostgreSQL knows" if name is None
           else _REFUSED.get(name, "bytes as they are, in the database's own encoding, "
                                   "SQL_ASCII here, which checks none"))
    shown = f"{value!r}" if name is None or name == value else f"{value!r} ({name})"
    return f"{shown} is not read by tollgate: {why}"


class Unsettled:
    """The session's encoding while a change may or may not have taken: a text is read
    only as every candidate reads it (None: any encoding, a value only known when it
    runs; then ASCII alone), so that whichever the database is in, it reads what the
    front read; other bytes get 22021 as bytes the encoding does not read."""

    def __init__(self, candidates: frozenset[Encoding] | None) -> None:
        self.candidates = candidates
        self.name = ("any encoding" if candidates is None
                     else " or ".join(sorted(e.name for e in candidates)))

    def __repr__(self) -> str:
        return f"Unsettled({self.name})"

    def decode(self, data: bytes, errors: str = "strict") -> str:
        if data.isascii():
            return data.decode("ascii")
        if self.candidates is not None:
            reads = {e.decode(data, errors) for e in self.candidates}
            if len(reads) == 1:
                return reads.pop()
        if errors != "strict":
            return data.decode("ascii", "replace")
        start = next(at for at, byte in enumerate(data) if byte >= 0x80)
        end = next((at for at in range(start, len(data)) if data[at] < 0x80), len(data))
        raise UnicodeDecodeError(self.name, data, start, end, (
            "read otherwise in each encoding the session may be in: its client_encoding "
            "is changing, and the change is known at the next Sync"))

    def encode(self, text: str, errors: str = "strict") -> bytes:
        if text.isascii():
            return text.encode("ascii")
        if self.candidates is not None:
            written = {e.encode(text, errors) for e in self.candidates}
            if len(written) == 1:
                return written.pop()
        if errors != "strict":
            return text.encode("ascii", "replace")
        start = next(at for at, char in enumerate(text) if not char.isascii())
        raise UnicodeEncodeError(self.name, text, start, len(text),
                                 "written otherwise in each encoding the session may be in")


# How the session's texts are read and written now: its encoding, or while it changes,
# what every candidate agrees on.
Reading = Encoding | Unsettled


@dataclass(frozen=True)
class Change:
    """What a statement may do to the session's encoding: set one of `to` (None: one
    only known when it runs), or end a transaction (which may take back a change);
    `sets`, the one a lone SET or RESET leaves once it completed."""

    to: frozenset[Encoding] | None = frozenset()
    ends_transaction: bool = False
    sets: Encoding | None = None


NO_CHANGE = Change()


class Wire:
    """A session's encoding as the front follows the database's.

    The database reads a message in the encoding in effect when it reads it, and reports
    a change (ParameterStatus) just before its next ReadyForQuery. So: from the moment a
    statement that may change it goes upstream until the Ready of its cycle, `reading`
    (the client's texts) is Unsettled between what it was and what it may become; at
    that Ready, it is what the database reported. The database writes in the encoding
    in effect as it writes: `output` (its answers) is Unsettled only from the answers
    of that statement on, and after a lone SET's completion, what it set. A
    transaction's end may take back a change made in it (a rollback, SET LOCAL at
    commit): `_reverts` keeps what it may go back to until the session is idle. A
    change the front did not see coming (a function's set_config) ends the session,
    before anything could be read otherwise."""

    def __init__(self, encoding: Encoding, database: Encoding | None = None) -> None:
        self.login = self.settled = self.reported = encoding
        # The database's own encoding (its server_encoding), if the front reads it: a
        # session set to SQL_ASCII is read in it, as the database reads it then.
        self.database = database
        self.reading: Reading = encoding
        self.output: Reading = encoding
        self._until = 0  # the cycle end whose Ready settles a change (0: none pending)
        self._candidates: frozenset[Encoding] | None = frozenset()
        self._reverts: set[Encoding] = set()

    def going(self, change: Change, cycle: int) -> bool:
        """A statement that may `change` the encoding goes upstream, in the cycle that
        ends at cycle end `cycle`: whether it may (its answers then say, `answering`)."""
        to = change.to
        if change.ends_transaction and to is not None:
            to = to | self._reverts
        if to is not None and not to - {self.settled} and not (self._until and to):
            return False
        self._widen(to, cycle)
        return True

    def ending(self, cycle: int) -> None:
        """Cycle end `cycle` goes upstream. Any statement may fail, and a failure in a
        transaction that changed the encoding takes the change back then (PostgreSQL
        aborts it at once); the database skips the rest of the cycle, so what it reads
        otherwise is what comes after this cycle's end, until its Ready."""
        back = self._reverts - {self.settled}
        if back:
            self._widen(frozenset(back), cycle)

    def _widen(self, to: frozenset[Encoding] | None, cycle: int) -> None:
        self._reverts.add(self.settled)
        was = self._candidates if self._until else frozenset({self.settled})
        self._candidates = None if to is None or was is None else was | to
        self._until = cycle
        self.reading = Unsettled(self._candidates)

    def answering(self, change: Change, completed: bool) -> None:
        """An answer of a statement that may `change` the encoding (`completed`: its
        CommandComplete), which went upstream: what the database writes from here."""
        if not self._until:
            return
        if completed and change.sets is not None:
            self.output = change.sets
        else:
            self.output = Unsettled(self._candidates)

    def report(self, value: str) -> str | None:
        """The database's new client_encoding: why it ends the session, if it does (one
        the front does not read, or one nothing it saw could set)."""
        encoding = self.encoding_of(value)
        if encoding is None:
            return (f"the database now speaks {value} to this session, which tollgate "
                    "does not read: it cannot be relayed further")
        expected = self._candidates if self._until else frozenset({self.settled})
        if expected is not None and encoding not in expected:
            return (f"the database now reads this session in {value}, not "
                    f"{self.settled.name}, by a statement that did not say it would (a "
                    "function's set_config): it cannot be relayed further")
        self.reported = encoding
        return None

    def encoding_of(self, value: str) -> Encoding | None:
        """The encoding a client_encoding of `value` has the session read in (None: one
        the front does not read). SQL_ASCII converts nothing: the database reads and
        writes the client's bytes as its own encoding's, after checking them."""
        if named(value) == SQL_ASCII:
            return self.database
        return readable(value)

    def changes(self, meaning: Any) -> Change:
        """What a statement (input.sql) may do to the session's encoding; Refusal (403) if
        it would set one the front does not read (client-only, SQL_ASCII, unknown)."""
        statements = meaning.get("statements") if isinstance(meaning, dict) else None
        to: set[Encoding] | None = set()
        ends = False
        lone = len(statements or ()) == 1
        for statement in statements or ():
            if not isinstance(statement, dict):
                continue
            ends = ends or statement.get("kind") == "transaction"
            for setting in statement.get("settings") or ():
                if not isinstance(setting, dict):
                    continue
                name, value = setting.get("name"), setting.get("value")
                if setting.get("reset") and name in ("client_encoding", "all"):
                    target: Encoding | None = self.login
                elif name == UNNAMED_SETTING or (name == "client_encoding" and
                                                 not isinstance(value, str)):
                    target = None
                elif name == "client_encoding" and isinstance(value, str):
                    target = self.encoding_of(value)
                    if target is None:
                        raise Refused(403, "session_setting", "changing client_encoding to "
                                       f"{_why_not(value)}")
                else:
                    continue
                to = None if to is None or target is None else to | {target}
                lone = lone and statement.get("kind") in ("set", "reset")
        if to == set() and not ends:
            return NO_CHANGE
        sets = next(iter(to)) if lone and to is not None and len(to) == 1 else None
        return Change(None if to is None else frozenset(to), ends, sets)

    def ready(self, cycle: int, status: bytes) -> None:
        """The database's ReadyForQuery ending cycle end `cycle`, with its `status`."""
        if self._until and cycle >= self._until:
            self._until = 0
            self.settled = self.reported
            self.reading = self.output = self.settled
        if not self._until and status == b"I":
            self._reverts.clear()


_WIRE: ContextVar[Wire | None] = ContextVar("tollgate_postgres_wire", default=None)
# Set in the task that reads the database's answers, which are in `Wire.output`.
_ANSWERS: ContextVar[bool] = ContextVar("tollgate_postgres_answers", default=False)


def wire() -> Reading:
    """The encoding the session whose task runs reads and writes in now: the client's
    texts' (UTF8 outside a session: a login's), or in the task answers are read in,
    the database's."""
    following = _WIRE.get()
    if following is None:
        return UTF8
    return following.output if _ANSWERS.get() else following.reading


def reading_answers() -> None:
    """The running task reads the database's answers (its context is its own)."""
    _ANSWERS.set(True)


@contextlib.contextmanager
def speaking(encoding: Encoding | Wire) -> Iterator[Wire]:
    """The session's messages read and written in `encoding` while it is open (a Wire:
    in what the database changes it to)."""
    current = encoding if isinstance(encoding, Wire) else Wire(encoding)
    token = _WIRE.set(current)
    try:
        yield current
    finally:
        _WIRE.reset(token)

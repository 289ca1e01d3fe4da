"""The client encodings the PostgreSQL front reads (extproc/postgres/encodings.py): every
encoding PostgreSQL knows is read or refused with its reason, every name PostgreSQL
takes for one finds it, and each encoding read keeps ASCII bytes ASCII and writes back
what it reads. That each reads every byte sequence as the server does is checked
against a server (tests/e2e/test_postgres_encodings_e2e.py)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import pytest

from extproc.codecs.refusal import Refusal
from extproc.interpret.sql import analyze
from extproc.postgres import encodings

# PostgreSQL's encodings (src/common/encnames.c, pg_enc2name_tbl), and how the front
# takes each: read as itself, read as UTF8 (SQL_ASCII), or refused.
SERVER = ["EUC_JP", "EUC_CN", "EUC_KR", "EUC_JIS_2004", "UTF8", "LATIN1", "LATIN2",
          "LATIN3", "LATIN4", "LATIN5", "LATIN6", "LATIN7", "LATIN8", "LATIN9", "LATIN10",
          "WIN1256", "WIN1258", "WIN866", "WIN874", "KOI8R", "WIN1251", "WIN1252",
          "ISO_8859_5", "ISO_8859_6", "ISO_8859_7", "ISO_8859_8", "WIN1250", "WIN1253",
          "WIN1254", "WIN1255", "WIN1257", "KOI8U"]
CLIENT_ONLY = ["SJIS", "BIG5", "GBK", "UHC", "GB18030", "JOHAB", "SHIFT_JIS_2004"]
NO_CODEC = ["MULE_INTERNAL", "EUC_TW"]
# Every name pg_encname_tbl lists, and the encoding it names.
ALIASES = {
    "abc": "WIN1258", "alt": "WIN866", "big5": "BIG5", "euccn": "EUC_CN",
    "eucjis2004": "EUC_JIS_2004", "eucjp": "EUC_JP", "euckr": "EUC_KR", "euctw": "EUC_TW",
    "gb18030": "GB18030", "gbk": "GBK", "iso88591": "LATIN1", "iso885910": "LATIN6",
    "iso885913": "LATIN7", "iso885914": "LATIN8", "iso885915": "LATIN9",
    "iso885916": "LATIN10", "iso88592": "LATIN2", "iso88593": "LATIN3", "iso88594": "LATIN4",
    "iso88595": "ISO_8859_5", "iso88596": "ISO_8859_6", "iso88597": "ISO_8859_7",
    "iso88598": "ISO_8859_8", "iso88599": "LATIN5", "johab": "JOHAB", "koi8": "KOI8R",
    "koi8r": "KOI8R", "koi8u": "KOI8U", "latin1": "LATIN1", "latin10": "LATIN10",
    "latin2": "LATIN2", "latin3": "LATIN3", "latin4": "LATIN4", "latin5": "LATIN5",
    "latin6": "LATIN6", "latin7": "LATIN7", "latin8": "LATIN8", "latin9": "LATIN9",
    "mskanji": "SJIS", "muleinternal": "MULE_INTERNAL", "shiftjis": "SJIS",
    "shiftjis2004": "SHIFT_JIS_2004", "sjis": "SJIS", "sqlascii": "SQL_ASCII",
    "tcvn": "WIN1258", "tcvn5712": "WIN1258", "uhc": "UHC", "unicode": "UTF8",
    "utf8": "UTF8", "vscii": "WIN1258", "win": "WIN1251", "win1250": "WIN1250",
    "win1251": "WIN1251", "win1252": "WIN1252", "win1253": "WIN1253", "win1254": "WIN1254",
    "win1255": "WIN1255", "win1256": "WIN1256", "win1257": "WIN1257", "win1258": "WIN1258",
    "win866": "WIN866", "win874": "WIN874", "win932": "SJIS", "win936": "GBK",
    "win949": "UHC", "win950": "BIG5", "windows1250": "WIN1250", "windows1251": "WIN1251",
    "windows1252": "WIN1252", "windows1253": "WIN1253", "windows1254": "WIN1254",
    "windows1255": "WIN1255", "windows1256": "WIN1256", "windows1257": "WIN1257",
    "windows1258": "WIN1258", "windows866": "WIN866", "windows874": "WIN874",
    "windows932": "SJIS", "windows936": "GBK", "windows949": "UHC", "windows950": "BIG5",
}
READ = [encodings.for_session(name) for name in SERVER]


@pytest.mark.parametrize(("alias", "name"), sorted(ALIASES.items()))
def test_every_name_postgresql_takes_names_its_encoding(alias: str, name: str) -> None:
    assert encodings.named(alias) == name
    # As PostgreSQL cleans a name: letters and digits, any case, quotes as asyncpg sends.
    assert encodings.named(f"'{alias.upper()}-'") == name


def test_no_other_name_is_taken() -> None:
    assert encodings.named("utf16") is None and encodings.named("") is None
    assert encodings.named("latin" + "9" * 64) is None  # over NAMEDATALEN: not looked up


def test_every_encoding_postgresql_knows_is_read_or_refused() -> None:
    known = set(ALIASES.values())
    assert known == {*SERVER, *CLIENT_ONLY, *NO_CODEC, "SQL_ASCII"}
    assert [e.name for e in READ] == SERVER
    for name in (*CLIENT_ONLY, *NO_CODEC):
        with pytest.raises(encodings.UnreadEncoding, match=f"client_encoding '{name}' is not read"):
            encodings.for_session(name)


@pytest.mark.parametrize(("asked", "says"), [
    ("sjis", "client_encoding 'sjis' (SJIS) is not read by tollgate: a client-only encoding "
             "whose two-byte characters can end in an ASCII byte (a quote or a backslash)"),
    ("MULE_INTERNAL", "no codec here reads it as PostgreSQL does"),
    ("EBCDIC", "client_encoding 'EBCDIC' is not read by tollgate: not an encoding "
               "PostgreSQL knows"),
])
def test_a_refusal_says_why_and_what_is_read(asked: str, says: str) -> None:
    with pytest.raises(encodings.UnreadEncoding) as refused:
        encodings.for_session(asked)
    assert says in str(refused.value)
    assert "It reads UTF8, LATIN1, " in str(refused.value)
    assert "connect with client_encoding=UTF8" in str(refused.value)


def test_sql_ascii_and_no_encoding_are_read_as_utf8() -> None:
    """SQL_ASCII passes bytes as they are, read in the database's encoding, which the
    front does not know: the session asks the database for UTF8 instead."""
    assert encodings.for_session("SQL_ASCII") is encodings.UTF8
    assert encodings.for_session(None) is encodings.UTF8


def sequences(encoding: encodings.Encoding) -> Iterator[bytes]:
    """Every byte sequence of up to two bytes that starts above 0x7F, and of three bytes
    after an EUC code set shift (0x8E, 0x8F): the longest characters of the encodings
    read are three bytes long."""
    yield from (bytes([b]) for b in range(0x80, 0x100))
    yield from (bytes([a, b]) for a in range(0x80, 0x100) for b in range(0x100))
    if encoding.name.startswith("EUC"):
        yield from (bytes([a, b, c]) for a in (0x8E, 0x8F) for b in range(0x80, 0x100)
                    for c in range(0x100))


@pytest.mark.slow
@pytest.mark.parametrize("encoding", READ, ids=SERVER)
def test_ascii_bytes_are_ascii_characters_and_nothing_else_is(
        encoding: encodings.Encoding) -> None:
    """What makes a statement read alike here and in the database: the quotes,
    backslashes, semicolons, dashes of SQL are the same bytes in both readings."""
    assert encoding.decode(bytes(range(1, 0x80))) == "".join(map(chr, range(1, 0x80)))
    for sequence in sequences(encoding):
        try:
            text = encoding.decode(sequence)
        except UnicodeDecodeError:
            continue
        assert [c for c in text if c.isascii()] == [chr(b) for b in sequence if b < 0x80], (
            sequence.hex())
        # What is read is written back as bytes that read as it.
        assert encoding.decode(encoding.encode(text)) == text, sequence.hex()


@pytest.mark.slow
@pytest.mark.parametrize("encoding", READ, ids=SERVER)
def test_no_character_is_written_as_bytes_that_read_otherwise(
        encoding: encodings.Encoding) -> None:
    """Python's euc_jp writes ¥ as 0x5C and ‾ as 0x7E, which read as a backslash and
    a tilde: the front never writes them so."""
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)

    def skipped(problem: UnicodeError) -> tuple[str, int]:
        assert isinstance(problem, UnicodeEncodeError)
        return "", problem.end

    name = f"tests.skip.{encoding.name}"
    codecs.register_error(name, skipped)
    candidates = every.encode(encoding.python, name).decode(encoding.python, "replace")
    writable = [c for c in {*candidates, *"\u00a5\u203e\uff5e\u2460"} if c != "\ufffd"]
    for char in writable:
        try:
            written = encoding.encode(char)
        except UnicodeEncodeError:
            continue
        assert encoding.decode(written) == char, (hex(ord(char)), written)


def test_euc_jp_reads_as_postgresql_where_python_reads_otherwise() -> None:
    """PostgreSQL's EUC_JP is eucJP-ms: CP932's fullwidth symbols, NEC's row 13, IBM's
    extensions (山﨑's 﨑, 髙); Python's euc_jp reads 0x8FA2B7 as `~`, PostgreSQL
    refuses it."""
    euc_jp = encodings.for_session("EUC_JP")
    assert euc_jp.decode(b"\xa1\xc1\xad\xa1\xbb\xb3\x8f\xf4\xbd") == "\uff5e\u2460山\ufa11"
    assert euc_jp.encode("\uff5e\u2460山\ufa11") == b"\xa1\xc1\xad\xa1\xbb\xb3\x8f\xf4\xbd"
    with pytest.raises(UnicodeDecodeError) as misread:
        euc_jp.decode(b"SELECT '\x8f\xa2\xb7'")
    assert (misread.value.start, misread.value.end) == (8, 11)
    with pytest.raises(UnicodeEncodeError):
        euc_jp.encode("\u00a5")
    assert euc_jp.encode("1\u00a5", "replace") == b"1?"
    assert euc_jp.decode(b"\xad\x27", "replace") == "\ufffd'"  # the quote stays a quote


def test_the_wire_is_utf8_but_where_a_session_speaks() -> None:
    latin9 = encodings.for_session("LATIN9")
    assert encodings.wire() is encodings.UTF8
    with encodings.speaking(latin9):
        assert encodings.wire() is latin9
    assert encodings.wire() is encodings.UTF8


LATIN9, LATIN1, UTF8 = (encodings.for_session(n) for n in ("LATIN9", "LATIN1", "UTF8"))
EUC_JP = encodings.for_session("EUC_JP")


@pytest.mark.parametrize(("statement", "to", "ends"), [
    ("SET client_encoding TO 'UTF8'", {UTF8}, False),
    ("SET NAMES 'latin1'", {LATIN1}, False),
    ("SELECT set_config('client_encoding', 'iso-8859-15', false)", {LATIN9}, False),
    ("SET LOCAL client_encoding = DEFAULT", {LATIN9}, False),  # the login's
    ("RESET client_encoding", {LATIN9}, False),
    ("RESET ALL", {LATIN9}, False),
    ("DISCARD ALL", {LATIN9}, False),
    # A value or a name only known when it runs: any encoding may follow.
    ("SELECT set_config('client_encoding', $1, false)", None, False),
    ("SELECT set_config(name, 'x', false) FROM pg_settings WHERE name LIKE 'jit'", None,
     False),
    ("SET search_path TO app", set(), False),
    ("BEGIN; SET LOCAL client_encoding TO 'EUC_JP'; COMMIT", {EUC_JP}, True),
    ("ROLLBACK", set(), True),
])
def test_what_a_statement_may_do_to_the_encoding(
        statement: str, to: set[encodings.Encoding] | None, ends: bool) -> None:
    change = encodings.Wire(LATIN9).changes(analyze(statement))
    assert change.to == (None if to is None else frozenset(to))
    assert change.ends_transaction is ends


@pytest.mark.parametrize(("statement", "says"), [
    ("SET NAMES 'SJIS'", "'SJIS' is not read by tollgate: a client-only encoding"),
    # With a database in SQL_ASCII: no reading is checked (a UTF8 one's is read in it).
    ("SET client_encoding TO 'SQL_ASCII'", "'SQL_ASCII' is not read by tollgate: bytes as"),
    ("SELECT set_config('client_encoding', 'EBCDIC', false)",
     "'EBCDIC' is not read by tollgate: not an encoding PostgreSQL knows"),
    ("SELECT set_config('client_encoding', 'BIG5', false)", "'BIG5' is not read"),
    ("SET NAMES DEFAULT; SET NAMES 'GBK'", "'GBK' is not read"),
    ("SET client_encoding TO 'mule_internal'", "no codec here reads it"),
])
def test_a_change_to_an_encoding_not_read_is_refused(statement: str, says: str) -> None:
    with pytest.raises(Refusal) as problem:
        encodings.Wire(UTF8, database=None).changes(analyze(statement))
    assert problem.value.status == 403
    assert problem.value.message.startswith("changing client_encoding to ")
    assert says in problem.value.message


def test_sql_ascii_is_read_in_the_databases_encoding() -> None:
    wire = encodings.Wire(LATIN9, database=UTF8)
    change = wire.changes(analyze("SET client_encoding TO 'sql_ascii'"))
    assert change.to == {UTF8} and change.sets is UTF8
    wire.going(change, cycle=1)
    assert wire.report("SQL_ASCII") is None
    wire.ready(1, b"I")
    assert wire.reading is UTF8


def test_a_change_reads_only_what_either_encoding_reads_alike_until_its_ready() -> None:
    wire = encodings.Wire(UTF8)
    wire.going(encodings.Change(frozenset({LATIN1})), cycle=3)
    assert isinstance(wire.reading, encodings.Unsettled)
    assert wire.reading.decode(b"SELECT 'ascii'") == "SELECT 'ascii'"
    with pytest.raises(UnicodeDecodeError, match="client_encoding is changing") as misread:
        wire.reading.decode(b"SELECT '\xc3\xa9'")  # UTF8's é, LATIN1's Ã©
    assert misread.value.start == 8
    with pytest.raises(UnicodeEncodeError):
        wire.reading.encode("é")
    assert wire.reading.encode("é", "replace") == b"?"
    assert wire.report("LATIN1") is None
    wire.ready(2, b"I")  # an earlier cycle's Ready settles nothing
    assert isinstance(wire.reading, encodings.Unsettled)
    wire.ready(3, b"I")
    assert wire.reading is LATIN1 and wire.settled is LATIN1
    assert wire.reading.decode(b"\xe9") == "é"


def test_a_change_that_did_not_take_settles_on_what_the_database_kept() -> None:
    wire = encodings.Wire(UTF8)
    wire.going(encodings.Change(frozenset({LATIN1})), cycle=1)
    wire.ready(1, b"I")  # no ParameterStatus: the SET failed
    assert wire.reading is UTF8


def test_a_rollback_may_take_a_change_back() -> None:
    """BEGIN; SET client_encoding (settled in the transaction); ROLLBACK: until its
    Ready, the ROLLBACK may have gone back to the encoding before the transaction."""
    wire = encodings.Wire(UTF8)
    wire.going(encodings.Change(frozenset({LATIN1})), cycle=1)
    assert wire.report("LATIN1") is None
    wire.ready(1, b"T")
    assert wire.reading is LATIN1
    wire.going(encodings.Change(frozenset(), ends_transaction=True), cycle=2)
    assert isinstance(wire.reading, encodings.Unsettled)
    assert wire.reading.candidates == {UTF8, LATIN1}
    assert wire.report("UTF8") is None
    wire.ready(2, b"I")
    assert wire.reading is UTF8
    wire.going(encodings.Change(frozenset(), ends_transaction=True), cycle=3)
    assert wire.reading is UTF8  # idle since: nothing left to take back


def test_an_unknown_value_reads_ascii_alone_until_the_database_says() -> None:
    wire = encodings.Wire(UTF8)
    wire.going(encodings.Change(None), cycle=1)
    assert wire.reading.decode(b"SELECT 1") == "SELECT 1"
    with pytest.raises(UnicodeDecodeError):
        wire.reading.decode("é".encode())
    assert wire.report("EUC_JP") is None
    wire.ready(1, b"I")
    assert wire.reading is EUC_JP


@pytest.mark.parametrize(("announced", "value", "says"), [
    (False, "LATIN1", "now reads this session in LATIN1, not UTF8, by a statement that "
                      "did not say it would"),
    (True, "LATIN2", "now reads this session in LATIN2"),
    (True, "SJIS", "now speaks SJIS to this session, which tollgate does not read"),
])
def test_a_change_nothing_announced_ends_the_session(announced: bool, value: str,
                                                      says: str) -> None:
    wire = encodings.Wire(UTF8)
    if announced:
        wire.going(encodings.Change(frozenset({LATIN1})), cycle=1)
    problem = wire.report(value)
    assert problem is not None and says in problem

"""The client encodings the PostgreSQL front reads (extproc/postgres/encodings.py): every
encoding PostgreSQL knows is read or refused with its reason, every name PostgreSQL
takes for one finds it, and each encoding read keeps ASCII bytes ASCII and writes back
what it reads. That each reads every byte sequence as the server does is checked
against a server (tests/e2e/test_postgres_encodings_e2e.py)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import pytest

from extproc.codecs.refusal import BadInput
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
        with pytest.raises(encodings.Refused, match=f"client_encoding '{name}' is not read"):
            encodings.for_session(name)


@pytest.mark.parametrize(("asked", "says"), [
    ("sjis", "client_encoding 'sjis' (SJIS) is not read by tollgate: a client-only encoding "
             "whose two-byte characters can end in an ASCII byte (a quote or a backslash)"),
    ("MULE_INTERNAL", "no codec here reads it as PostgreSQL does"),
    ("EBCDIC", "client_encoding 'EBCDIC' is not read by tollgate: not an encoding "
               "PostgreSQL knows"),
])
def test_a_refusal_says_why_and_what_is_read(asked: str, says: str) -> None:
    with pytest.raises(encodings.Refused) as refused:
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


@pytest.mark.parametrize(("statement", "refused"), [
    ("SET client_encoding TO 'UTF8'", "changing client_encoding is refused: the server "
                                      "would read later SQL in another encoding than LATIN9"),
    ("SET NAMES 'SJIS'", "in another encoding than LATIN9"),
    ("SELECT set_config('client_encoding', 'WIN1252', false)", "than LATIN9"),
    ("SET LOCAL client_encoding = DEFAULT", None),
    ("SET client_encoding TO 'iso-8859-15'", None),
    ("RESET client_encoding", None),
    ("DISCARD ALL", None),
    # A name only known when it runs: the pack's to refuse (pg_dump sends one); should
    # the database report another encoding then, the session ends.
    ("SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'jit'", None),
])
def test_a_change_of_the_sessions_encoding_is_refused(statement: str,
                                                      refused: str | None) -> None:
    with encodings.speaking(encodings.for_session("LATIN9")):
        if refused is None:
            encodings.refuse_change(analyze(statement))
            return
        with pytest.raises(BadInput) as problem:
            encodings.refuse_change(analyze(statement))
    assert problem.value.status == 403 and refused in problem.value.message


def test_a_reported_change_ends_the_session() -> None:
    with encodings.speaking(encodings.for_session("EUC_JP")):
        assert encodings.reported("client_encoding", "EUC_JP") is None
        assert encodings.reported("TimeZone", "UTC") is None
        assert "now reads this session in SJIS, not EUC_JP" in str(
            encodings.reported("client_encoding", "SJIS"))

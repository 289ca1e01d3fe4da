"""PostgreSQL sessions in the client encodings the database converts (issue: LATIN9 and
EUC_JP clients were refused, undecodable bytes closed the connection).

Real clients through a real Envoy and the front, to the machine's PostgreSQL. A
session in LATIN9 or EUC_JP is read in it: its statements are decided and recorded as
the database reads them, its rows masked in it (text, binary, COPY); the client-only
encodings are refused at login saying why (tests/e2e/test_postgres_e2e.py); bytes its
encoding does not read get 22021, as from PostgreSQL, and the session goes on. Each
encoding the front reads is checked against the server, byte sequence by byte
sequence. (The database converts, and checks, every text it sends: a value the front
cannot read is refused, tests/postgres/test_results.py.)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from extproc.postgres import encodings
from extproc.postgres import messages as pg
from tests.e2e.test_postgres_e2e import _Raw, customers_database, shop, url
from tests.postgres.test_encodings import READ, SERVER, sequences
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway, request_text

# Their names and e-mail addresses are masked; their notes, of no person, pass.
PEOPLE = [
    (1, "山田 太郎", "taro@example.jp", "東京の窓口"),
    (2, "Zoë Gruyère", "zoe@example.com", "café à Genève"),
    # Where PostgreSQL's EUC_JP reads otherwise than Python's euc_jp (which psycopg
    # decodes with, so only a raw client reads them): IBM's 﨑 and 髙, NEC's ①,
    # CP932's fullwidth tilde.
    (3, "山﨑 髙志", "takashi@example.jp", "①番 \uff5e 東京"),
]


@pytest.fixture(scope="module")
def people_db() -> Iterator[str]:
    with customers_database("tollgate_enc", "CREATE TABLE people (id int PRIMARY KEY, "
                            "name text, email text, note text)",
                            "CREATE TABLE notes (id int, note text)") as database:
        with psycopg.connect(database, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s)", PEOPLE)
        yield database


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       people_db: str) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "postgres-encodings",
                        targets=[shop(people_db)], postgres={}) as running:
        yield running


def _answers(client: _Raw, *messages: bytes) -> list[tuple[bytes, bytes]]:
    """`messages` sent at once; the answers up to a ReadyForQuery."""
    client.send(b"".join(messages))
    return client.messages_until(b"Z")


def _raw(kind: bytes, *strings: bytes, tail: bytes = b"") -> bytes:
    """A message whose strings are the bytes given, in whatever encoding (`tail`, the
    rest of its body)."""
    body = b"".join(s + b"\x00" for s in strings) + tail
    return kind + struct.pack("!i", 4 + len(body)) + body


# -- each encoding read as the server reads it ---------------------------------------------


@pytest.mark.parametrize("encoding", READ, ids=SERVER)
def test_every_byte_sequence_reads_as_postgresql_reads_it(
        people_db: str, encoding: encodings.Encoding) -> None:
    """Every sequence of one or two bytes above 0x7F, and of three after an EUC code
    set shift, as the server converts it to its UTF8 (convert_from, the conversion a
    client's bytes go through): where the server reads one, the front reads the same.
    A single-byte encoding's longer sequences are its bytes one by one; UTF8 is read
    alike by construction past two bytes. A sequence the server refuses never runs,
    whatever the front read in it (Python's euc_jis_2004 reads JIS X 0212 rows there)."""
    single = not encoding.name.startswith(("EUC", "UTF"))
    found = [s for s in sequences(encoding) if not single or len(s) == 1]
    with psycopg.connect(people_db, autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION pg_temp.read(b bytea, e text) RETURNS text "
                     "AS $$ BEGIN RETURN convert_from(b, e); EXCEPTION WHEN others THEN "
                     "RETURN NULL; END $$ LANGUAGE plpgsql")
        server: list[str | None] = []
        for at in range(0, len(found), 20_000):
            server += [row[0] for row in conn.execute(
                "SELECT pg_temp.read(b, %s) FROM unnest(%s::bytea[]) b",
                (encoding.name, found[at:at + 20_000]))]
    differ = []
    for sequence, read in zip(found, server, strict=True):
        if read is None:
            continue
        try:
            ours: str | None = encoding.decode(sequence)
        except UnicodeDecodeError:
            ours = None
        if ours != read:
            differ.append((sequence.hex(), read, ours))
    assert not differ, differ[:10]


# -- sessions in LATIN9 and EUC_JP -------------------------------------------------------


def test_a_latin9_session_reads_and_writes_the_euro_and_records_it(
        gw: Gateway, people_db: str) -> None:
    """'€' is 0xA4 in LATIN9: the statement is decided and recorded as the database
    reads it, and the row the database stores, and sends back, is the euro."""
    statement = "INSERT INTO notes VALUES (7, 'œuvre : 12 € payée')"
    with psycopg.connect(url(gw), client_encoding="LATIN9", autocommit=True) as conn:
        assert conn.execute("SHOW client_encoding").fetchone() == ("LATIN9",)
        conn.execute(statement)
        conn.execute("INSERT INTO notes VALUES (%s, %s)", (8, "reçu 3 €"))
        rows = conn.execute("SELECT note FROM notes WHERE id IN (7, 8) ORDER BY id").fetchall()
    assert rows == [("œuvre : 12 € payée",), ("reçu 3 €",)]
    assert request_text(gw.record_of(statement)) == statement
    with psycopg.connect(people_db) as upstream:
        stored = upstream.execute("SELECT note FROM notes WHERE id = 7").fetchone()
    assert stored == ("œuvre : 12 € payée",)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_an_euc_jp_session_reads_japanese_and_masks_in_it(gw: Gateway, binary: bool) -> None:
    """The notes come back as the database sent them, the names and e-mail addresses
    masked, in text and in binary; the statement is recorded as read (the name it holds
    masked, as in any record)."""
    statement = ("SELECT name, email, note FROM people WHERE name = '山田 太郎' "
                 "AND note = '東京の窓口'")
    with psycopg.connect(url(gw), client_encoding="EUC_JP", autocommit=True) as conn, \
            conn.cursor(binary=binary) as cur:
        row = cur.execute(statement).fetchone()
    assert row is not None and row[0] == "[REDACTED:PERSON]" and row[2] == "東京の窓口"
    assert "taro@example.jp" not in row[1] and "[REDACTED" in row[1]
    recorded = statement.replace("山田 太郎", "[REDACTED:PERSON]")
    assert request_text(gw.record_of(recorded)) == recorded


def test_an_euc_jp_copy_is_masked_in_it(gw: Gateway) -> None:
    with psycopg.connect(url(gw), client_encoding="EUC_JP", autocommit=True) as conn, \
            conn.cursor() as cur, cur.copy("COPY (SELECT name, email, note FROM people "
                                           "WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
        rows = list(copy.rows())
    assert [r[2] for r in rows] == ["東京の窓口", "café à Genève"]
    assert [r[0] for r in rows] == ["[REDACTED:PERSON]", "[REDACTED:PERSON]"]
    assert not any("@example" in r[1] for r in rows)


def test_euc_jp_reads_as_postgresql_where_python_does_not(gw: Gateway, people_db: str) -> None:
    """A statement naming 山﨑 髙志, ① and the fullwidth tilde in PostgreSQL's EUC_JP
    bytes (Python's euc_jp reads neither 﨑, 髙 nor ①, and the tilde otherwise) is
    decided and recorded as the database reads it (the name masked, as in any record);
    the row comes back in the bytes the database sent, its name and e-mail address
    masked."""
    euc_jp = encodings.for_session("EUC_JP")
    statement = ("SELECT name, email, note FROM people WHERE name = '山﨑 髙志' "
                 "AND note = '①番 \uff5e 東京'")
    client = _Raw(gw)
    client.login(client_encoding="EUC_JP")
    answers = _answers(client, _raw(b"Q", euc_jp.encode(statement)))
    client.sock.close()
    ((_, row),) = [(kind, body) for kind, body in answers if kind == b"D"]
    name, email, note = pg.data_row(row)
    with psycopg.connect(people_db) as upstream:
        sent = upstream.execute("SELECT convert_to(note, 'EUC_JP') FROM people "
                                "WHERE id = 3").fetchone()
    assert (note,) == sent
    assert name == b"[REDACTED:PERSON]"
    assert email is not None and b"takashi@example.jp" not in email
    recorded = statement.replace("山﨑 髙志", "[REDACTED:PERSON]")
    assert request_text(gw.record_of(recorded)) == recorded


def test_a_change_midway_is_followed_and_a_rollback_takes_it_back(
        gw: Gateway, people_db: str) -> None:
    """A LATIN9 session that sets UTF8, then EUC_JP: each statement is read, decided and
    recorded in the encoding the database reads it in, and the rows come back in it,
    masked; a change rolled back is followed back (psycopg encodes as the database's
    ParameterStatus says)."""
    euro = "INSERT INTO notes VALUES (21, 'reçu 5 € en UTF8')"
    japanese = "SELECT name, email, note FROM people WHERE note = '東京の窓口'"
    with psycopg.connect(url(gw), client_encoding="LATIN9", autocommit=True) as conn:
        conn.execute("SET client_encoding TO 'UTF8'")
        assert conn.info.encoding == "utf-8"
        conn.execute(euro)
        assert conn.execute("SELECT note FROM notes WHERE id = 21").fetchone() == (
            "reçu 5 € en UTF8",)
        conn.execute("SET NAMES 'EUC_JP'")
        row = conn.execute(japanese).fetchone()
        assert row is not None and row[2] == "東京の窓口"
        assert row[0] == "[REDACTED:PERSON]" and "taro@" not in row[1]
        with conn.transaction(force_rollback=True):
            conn.execute("SET client_encoding TO 'LATIN1'")
            assert conn.info.encoding == "iso8859-1"
            assert conn.execute("SELECT 'Zoë'").fetchone() == ("Zoë",)
        assert conn.info.encoding == "euc_jp"
        assert conn.execute("SHOW client_encoding").fetchone() == ("EUC_JP",)
    assert request_text(gw.record_of(euro)) == euro
    assert request_text(gw.record_of(japanese)) == japanese
    with psycopg.connect(people_db) as upstream:
        assert upstream.execute("SELECT note FROM notes WHERE id = 21").fetchone() == (
            "reçu 5 € en UTF8",)


def test_texts_sent_before_a_change_is_known_are_read_only_where_both_agree(
        gw: Gateway) -> None:
    """A batch that sets LATIN1 and, before its Sync, sends a text whose bytes LATIN1
    and UTF8 read otherwise (0xC3 0xA9: é or Ã©): the database would read it in one,
    the front cannot know which yet; refused with 22021 (the database skips to the
    Sync, and the failed batch takes the SET back). ASCII passes; the session is read
    in what the database reports after each Sync."""
    client = _Raw(gw)
    client.login()
    no_params = struct.pack("!hhh", 0, 0, 0)

    def statement(text: bytes) -> bytes:
        return (_raw(b"P", b"", text, tail=b"\x00\x00") + _raw(b"B", b"", b"", tail=no_params)
                + _raw(b"E", b"", tail=b"\x00" * 4))

    answers = _answers(client, statement(b"SET client_encoding TO 'LATIN1'"),
                       statement(b"SELECT 'ascii' AS v"), statement(b"SELECT '\xc3\xa9' AS v"),
                       pg.encode(b"S", b""))
    assert [body for kind, body in answers if kind == b"D"] == [b"\x00\x01\x00\x00\x00\x05ascii"]
    (refused,) = [body for kind, body in answers if kind == b"E"]
    assert _error(answers)["C"] == "22021", refused
    assert _error(answers)["M"] == (
        'tollgate: invalid byte sequence for encoding "LATIN1 or UTF8": 0xc3 0xa9 (read '
        "otherwise in each encoding the session may be in: its client_encoding is "
        "changing, and the change is known at the next Sync)")
    assert not [body for kind, body in answers if kind == b"S"]  # taken back
    answers = _answers(client, _raw(b"Q", "SELECT 'ça' AS v".encode()))
    assert [body for kind, body in answers if kind == b"D"] == [
        b"\x00\x01\x00\x00\x00\x03\xc3\xa7a"]
    answers = _answers(client, _raw(b"Q", b"SET client_encoding TO 'LATIN1'"))
    assert (b"S", b"client_encoding\x00LATIN1\x00") in answers
    answers = _answers(client, _raw(b"Q", b"SELECT '\xe9t\xe9' AS v"))  # LATIN1's été
    assert [body for kind, body in answers if kind == b"D"] == [
        b"\x00\x01\x00\x00\x00\x03\xe9t\xe9"]
    client.sock.close()
    assert gw.record_of("SELECT 'été' AS v")["request"]["method"] == "QUERY"


def test_a_change_to_an_encoding_not_read_is_refused(gw: Gateway) -> None:
    with psycopg.connect(url(gw), client_encoding="LATIN9", autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="changing client_encoding to 'SJIS' is not read by "
                                 "tollgate: a client-only encoding"):
            conn.execute("SET client_encoding TO 'SJIS'")
        assert conn.execute("SHOW client_encoding").fetchone() == ("LATIN9",)


def test_pg_dumps_set_config_of_a_named_row_is_read_and_refused_before_it_runs(
        gw: Gateway) -> None:
    """pg_dump's shape, `set_config(name, …) FROM pg_settings WHERE name = '…'`, names its
    setting (interpret/sql/settings_row.py): an encoding tollgate cannot read is refused
    before the database runs it, and the session goes on in its own."""
    dba = tokens.token("dba-encoding", ["dba"])
    with psycopg.connect(url(gw, token=dba), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="changing client_encoding to 'SJIS' is not read by tollgate"):
            conn.execute("SELECT set_config(name, 'SJIS', false) FROM pg_settings WHERE "
                         "name = 'client_encoding'")
        assert conn.execute("SHOW client_encoding").fetchone() == ("UTF8",)


@pytest.mark.parametrize(("statement", "says"), [
    # set_config of a name only known when it runs is the dba group's (pg_dump sends one
    # of pg_settings' row named by `=`, which is read: the test below).
    ("SELECT set_config(name, 'SJIS', false) FROM pg_settings WHERE name LIKE "
     "'client_encoding'", "the database now speaks SJIS to this session, which tollgate "
                          "does not read"),
    # A function's own set_config: nothing in the statement says it changes the encoding.
    ("SELECT to_latin1()", "the database now reads this session in LATIN1, not UTF8, by a "
                           "statement that did not say it would"),
], ids=["not-read", "not-announced"])
def test_an_encoding_the_front_cannot_follow_ends_the_session(
        gw: Gateway, people_db: str, statement: str, says: str) -> None:
    """The database reports the change; the front cannot read the session as the
    database does from then on: it ends, saying so, rather than relay it."""
    with psycopg.connect(people_db, autocommit=True) as upstream:
        upstream.execute("CREATE OR REPLACE FUNCTION to_latin1() RETURNS text LANGUAGE sql "
                         "AS $$ SELECT set_config('client_encoding', 'LATIN1', false) $$")
    dba = tokens.token("dba-encoding", ["dba"])
    with psycopg.connect(url(gw, token=dba), autocommit=True) as conn:
        with pytest.raises(psycopg.OperationalError, match=says):
            conn.execute(statement)
        assert conn.closed


# -- bytes a session's encoding does not read ----------------------------------------


def _error(answers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    (body,) = [body for kind, body in answers if kind == b"E"]
    return {f[:1].decode(): f[1:].decode("utf-8", "replace") for f in body.split(b"\x00") if f}


@pytest.mark.parametrize(("encoding", "bad", "says"), [
    ("UTF8", b"\xff", '"UTF8": 0xff'),
    ("EUC_JP", b"\x8f\xa2\xb7", '"EUC_JP": 0x8f 0xa2 0xb7'),  # Python reads `~`
], ids=["utf8", "euc-jp"])
def test_bytes_the_encoding_does_not_read_get_22021_and_the_session_goes_on(
        gw: Gateway, encoding: str, bad: bytes, says: str) -> None:
    """A simple Query, and a Parse in a batch, whose text holds bytes the session's
    encoding does not read: 22021 as PostgreSQL answers, recorded, and the session goes
    on (the connection was closed)."""
    client = _Raw(gw)
    client.login(client_encoding=encoding)
    text = b"SELECT 'x" + bad + b"' AS v"
    refused = _error(_answers(client, _raw(b"Q", text)))
    assert refused["C"] == "22021" and says in refused["M"], refused
    no_params = struct.pack("!hhh", 0, 0, 0)
    answers = _answers(client, _raw(b"P", b"", text, tail=b"\x00\x00"),
                       _raw(b"B", b"", b"", tail=no_params), _raw(b"E", b"", tail=b"\x00" * 4),
                       pg.encode(b"S", b""))
    assert [kind for kind, _ in answers] == [b"E", b"Z"]
    assert _error(answers)["C"] == "22021"
    answers = _answers(client, pg.encode_query("SELECT 41 + 1"))
    assert [body for kind, body in answers if kind == b"D"] == [b"\x00\x01\x00\x00\x00\x0242"]
    client.sock.close()
    # Recorded with what could be read of it.
    for method in ("QUERY", "PARSE"):
        assert gw.record_of("SELECT 'x\ufffd' AS v", method=method)["outcome"]["action"] == "deny"

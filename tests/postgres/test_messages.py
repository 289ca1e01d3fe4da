"""The protocol's framer and codecs: messages across reads, several in one read, and
bytes that are not PostgreSQL's protocol refused rather than passed."""

from __future__ import annotations

import pytest

from extproc.postgres import encodings
from extproc.postgres import messages as pg

# A session's client side as psycopg sends it: Parse/Bind/Describe/Execute/Sync, a
# simple Query, a Terminate.
STREAM = b"".join([
    pg.encode_parse("s1", "SELECT $1::int", (23,)),
    pg.encode(b"B", b"\x00s1\x00" + b"\x00\x01\x00\x00" + b"\x00\x01\x00\x00\x00\x011"
              + b"\x00\x00"),
    pg.encode(b"D", b"P\x00"),
    pg.encode_execute("", 0),
    pg.encode(b"S", b""),
    pg.encode_query("SELECT 'ü'"),
    pg.encode(b"X", b""),
])


def test_a_stream_split_at_every_byte_frames_the_same_messages() -> None:
    whole = pg.Framer(pg.FRONTEND_KINDS, 1 << 20).feed(STREAM)
    assert [m.kind for m in whole] == [b"P", b"B", b"D", b"E", b"S", b"Q", b"X"]
    assert b"".join(m.raw() for m in whole) == STREAM
    for cut in range(1, len(STREAM)):
        framer = pg.Framer(pg.FRONTEND_KINDS, 1 << 20)
        got = framer.feed(STREAM[:cut]) + framer.feed(STREAM[cut:])
        assert got == whole, cut
        assert framer.buffered == 0


def test_a_stream_fed_one_byte_at_a_time_frames_the_same_messages() -> None:
    framer = pg.Framer(pg.FRONTEND_KINDS, 1 << 20)
    got = [m for i in range(len(STREAM)) for m in framer.feed(STREAM[i:i + 1])]
    assert b"".join(m.raw() for m in got) == STREAM


def test_the_startup_phase_is_untyped_until_the_startup_message() -> None:
    stream = (pg.encode_request(pg.SSL_REQUEST)
              + pg.encode_startup({"user": "agent", "database": "shop"})
              + pg.encode_password("token"))
    for cut in range(1, len(stream)):
        framer = pg.Framer(pg.FRONTEND_KINDS, 1 << 20, untyped=True)
        got = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert [m.kind for m in got] == [b"", b"", b"p"], cut
        assert pg.startup(got[0].body).code == pg.SSL_REQUEST
        start = pg.startup(got[1].body)
        assert (start.code, start.parameters) == (pg.PROTOCOL_3_0,
                                                  {"user": "agent", "database": "shop"})
        assert pg.password(got[2].body) == "token"


def test_a_cancel_request_carries_its_key() -> None:
    raw = pg.encode_request(pg.CANCEL_REQUEST, (7 << 24 | 5).to_bytes(4, "big") + b"abcd")
    (message,) = pg.Framer(pg.FRONTEND_KINDS, 100, untyped=True).feed(raw)
    assert pg.startup(message.body).cancel == (7 << 24 | 5, b"abcd")


@pytest.mark.parametrize(("data", "problem"), [
    (b"Z\x00\x00\x00\x05I", "unknown message type"),
    (b"Q\x00\x00\x00\x02", "of length 2"),
    (b"Q\x00\x10\x00\x00", "over the"),
])
def test_bytes_that_are_not_the_protocol_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(pg.ProtocolViolation, match=problem):
        pg.Framer(pg.FRONTEND_KINDS, 1024).feed(data)


def test_an_oversize_message_is_refused_from_its_header_before_its_body() -> None:
    framer = pg.Framer(pg.FRONTEND_KINDS, 1024)
    with pytest.raises(pg.ProtocolViolation, match="1025 bytes"):
        framer.feed(b"Q" + (1029).to_bytes(4, "big"))


def test_an_http_request_at_the_startup_is_refused() -> None:
    with pytest.raises(pg.ProtocolViolation, match="startup packet"):
        pg.Framer(pg.FRONTEND_KINDS, 1024, untyped=True).feed(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize(("reader", "body"), [
    (pg.query, b"SELECT 1"),                       # no terminator
    (pg.query, b"SELECT 1\x00extra"),              # more than its contents
    (pg.parse, b"s\x00SELECT 1\x00\x00\x05"),      # five types promised, none given
    (pg.bind, b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09ab\x00\x00"),  # value past the end
    (pg.execute, b"\x00\x00\x00"),                 # a row limit cut short
    (pg.describe, b"X\x00"),                       # neither statement nor portal
    (pg.data_row, b"\x00\x02\x00\x00\x00\x01a"),   # two values promised, one given
    (pg.startup, b"\x00\x03\x00\x00user\x00a"),    # a parameter without its value
])
def test_a_body_that_is_not_what_its_type_says_is_refused(reader: object, body: bytes) -> None:
    with pytest.raises(pg.ProtocolViolation):
        reader(body)  # type: ignore[operator]


def test_codecs_read_what_they_write() -> None:
    columns = [pg.Column("id", 16384, 1, 23, 4, -1, 0), pg.Column("ssn", 16384, 2, 25, -1, -1, 1)]
    assert pg.row_description(pg.encode_row_description(columns)[5:]) == columns
    row: list[bytes | None] = [b"1", None, b""]
    assert pg.data_row(pg.encode_data_row(row)[5:]) == row
    error = pg.error("42501", "refused", detail="trace id 1", hint="ask", severity="FATAL")
    assert pg.fields(error[5:]) == {"S": "FATAL", "V": "FATAL", "C": "42501", "M": "refused",
                                    "D": "trace id 1", "H": "ask"}
    note = pg.Notification(9, "jobs", "payload")
    assert pg.notification(pg.encode_notification(note)[5:]) == note
    assert pg.parse(pg.encode_parse("s", "SELECT $1", (25,))[5:]) == pg.Parse(
        "s", "SELECT $1", (25,))
    assert pg.execute(pg.encode_execute("p", 10)[5:]) == ("p", 10)
    assert pg.backend_key_data(pg.encode_backend_key(0xFFFFFFFF, b"k" * 4)[5:]) == (
        0xFFFFFFFF, b"kkkk")


def test_strings_are_read_and_written_in_the_sessions_encoding() -> None:
    """A client's string in the session's encoding is read as it; one not valid in it
    is Undecodable (PostgreSQL's 22021, the session goes on), with what could be read;
    the database's strings are read with U+FFFD where they do not read; the front's
    own texts are written with `?` for what the encoding cannot hold."""
    euc_jp = encodings.for_session("EUC_JP")
    with encodings.speaking(euc_jp):
        assert pg.query(euc_jp.encode("SELECT '山田'") + b"\x00") == "SELECT '山田'"
        with pytest.raises(pg.Undecodable) as bad:
            pg.parse(b"s\x00SELECT '\xa4\x27 -- '\x00\x00\x00")
        assert str(bad.value) == 'invalid byte sequence for encoding "EUC_JP": 0xa4'
        assert bad.value.text == "SELECT '\ufffd' -- '"
        fields = pg.fields(b"Mvalue \xa4\x27 here\x00\x00")
        assert fields == {"M": "value \ufffd' here"}
        assert pg.error("XX000", "refused: ¥ 山")[5:].endswith(b"Mrefused: ? \xbb\xb3\x00\x00")
    with encodings.speaking(encodings.for_session("LATIN9")):
        assert pg.encode_query("SELECT '€'") == pg.encode(b"Q", b"SELECT '\xa4'\x00")
        with pytest.raises(UnicodeEncodeError):  # SQL is never written otherwise
            pg.encode_query("SELECT '山'")

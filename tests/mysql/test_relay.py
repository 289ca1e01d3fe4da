"""The result relay (extproc/mysql/relay.py) with no socket and no event loop: the
server's packets fed in one by one, what the client gets read back from each `Step`,
and what the command's run records. The exchange is a stand-in holding what the relay
reads of it (its mask, its record limit) and what it writes (outcome, masking counts,
a refusal); the masker is the real one."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from extproc.codecs.refusal import Refusal
from extproc.exchange.act import Act
from extproc.exchange.state import Answer
from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.mysql.flags import (
    CHARSET_UTF8MB4_GENERAL_CI,
    CLIENT_DEPRECATE_EOF,
    CLIENT_PROTOCOL_41,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_VAR_STRING,
    SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_AUTOCOMMIT,
    SERVER_STATUS_IN_TRANS,
)
from extproc.mysql.framing import Framer, Packet, lenenc_int
from extproc.mysql.relay import Relay, Step
from extproc.mysql.responses import (
    encode_eof,
    encode_err,
    encode_ok,
    is_eof,
    is_err,
    is_ok,
    parse_eof,
    parse_err,
    parse_ok,
)
from extproc.mysql.resultsets import (
    ColumnDefinition,
    encode_binary_row,
    encode_column_definition,
    encode_text_row,
    parse_column_definition,
    parse_text_row,
)
from extproc.mysql.runs import Run

CAPABILITIES = CLIENT_PROTOCOL_41
MASKER = Masker(b"k" * 32)
AUTOCOMMIT = SERVER_STATUS_AUTOCOMMIT
COLUMNS = [ColumnDefinition(name="id", type=MYSQL_TYPE_LONG, length=11),
           ColumnDefinition(name="email", type=MYSQL_TYPE_VAR_STRING,
                            charset=CHARSET_UTF8MB4_GENERAL_CI, length=1020)]
ROWS: list[list[bytes | None]] = [[b"1", b"ada@example.com"], [b"2", None]]


@dataclass
class _Exchange:
    """What the relay reads of an exchange, and what it leaves in it."""

    mask: MaskSpec | None = field(default_factory=MaskSpec)
    record_limit: int = 4096
    front: str = "mysql"
    request: dict[str, Any] | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    masked: Counter[str] = field(default_factory=Counter)
    refusals: list[Refusal] = field(default_factory=list)

    def record_masking(self, counts: Counter[str]) -> None:
        self.masked.update(counts)

    def refuse(self, bad: Refusal) -> Answer:
        self.refusals.append(bad)
        return Answer(bad.status, {"error": bad.error, "message": bad.message},
                      bad.error, "trace-1")


@dataclass
class _Act:
    exchange: _Exchange
    fingerprinting: bool = False  # no flow: rows are not read for it
    reads_words: bool = False


def run(mask: MaskSpec | None = None) -> Run:
    return Run(cast(Act, _Act(_Exchange(mask=MaskSpec() if mask is None else mask))))


def packets(seq: int, *payloads: bytes) -> list[Packet]:
    """Payloads as the server frames them, sequence ids from `seq` on."""
    return [Packet((seq + i) & 0xFF, p) for i, p in enumerate(payloads)]


def result_set(rows: list[list[bytes | None]], end: bytes, seq: int = 1,
               columns: list[ColumnDefinition] = COLUMNS, eof: bool = True,
               binary: bool = False) -> list[Packet]:
    """A result set's packets: column count, definitions, EOF (`eof`), rows, `end`."""
    return packets(seq, lenenc_int(len(columns)), *map(encode_column_definition, columns),
                   *([encode_eof(status=AUTOCOMMIT)] if eof else []),
                   *(encode_binary_row(r, columns) if binary else encode_text_row(r)
                     for r in rows), end)


def feed(relay: Relay, fed: list[Packet]) -> list[Step]:
    return [relay.feed(p) for p in fed]


def sent(steps: list[Step]) -> list[Packet]:
    """What the client got, framed as it reads it."""
    return Framer(1 << 20).feed(b"".join(b"".join(s.writes) for s in steps))


def test_a_result_set_goes_out_its_rows_masked_and_ends_the_answer() -> None:
    """Definitions pass as the server sent them; a row's email is masked, NULL stays
    NULL; the closing EOF goes out with the rows in one write, waited for, and ends the
    answer, its status kept; the run records rows, result and masking."""
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT)
    fed = result_set(ROWS, encode_eof(status=AUTOCOMMIT | SERVER_STATUS_IN_TRANS))
    steps = feed(relay, fed)
    *quiet, last = steps
    assert all(s.writes == [] and not s.done for s in quiet)
    assert len(last.writes) == 1 and last.drain and last.done and relay.done
    out = sent(steps)
    assert [p.raw() for p in out[:4]] == [p.raw() for p in fed[:4]]
    first, second = (parse_text_row(p.payload, 2) for p in out[4:6])
    assert first[0] == b"1" and first[1] is not None and b"REDACTED" in first[1]
    assert b"ada@" not in first[1] and second == [b"2", None]
    assert [p.seq for p in out] == [p.seq for p in fed]
    assert is_eof(out[-1].payload)
    assert relay.status == AUTOCOMMIT | SERVER_STATUS_IN_TRANS
    assert (command.rows, command.results, command.error) == (2, ["2 columns"], None)
    assert cast(_Exchange, command.exchange).masked["email"] == 1
    assert b"ada@" not in command.sample and b"email" in command.sample


def test_no_mask_relays_every_packet_byte_for_byte() -> None:
    relay = Relay(run(MaskSpec(detectors=frozenset(), fields=frozenset())), MASKER,
                  CAPABILITIES, AUTOCOMMIT)
    fed = result_set(ROWS, encode_eof(status=AUTOCOMMIT))
    assert [p.raw() for p in sent(feed(relay, fed))] == [p.raw() for p in fed]


def test_rows_held_go_out_at_a_flush_with_what_came_before_them() -> None:
    """The loop flushes once it has no packet framed: the header, definitions and rows
    so far in one write it waits on; the rest goes with the end."""
    relay = Relay(run(), MASKER, CAPABILITIES, AUTOCOMMIT)
    fed = result_set(ROWS, encode_eof(status=AUTOCOMMIT))
    steps = feed(relay, fed[:5])  # through the first row
    assert relay.holding and all(s.writes == [] for s in steps)
    flushed = relay.flush()
    assert not relay.holding and flushed.drain and not flushed.done
    assert len(sent([flushed])) == 5
    rest = feed(relay, fed[5:])
    assert rest[-1].done and len(sent(rest)) == 2
    assert [p.seq for p in sent([flushed, *rest])] == [p.seq for p in fed]


def test_more_results_keep_the_answer_open_until_the_last() -> None:
    """A multi-statement's answer: a result set whose EOF says more results exist, an
    OK saying the same, then an OK without it, which ends the answer."""
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT)
    more = AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS
    first = feed(relay, result_set(ROWS[:1], encode_eof(status=more)))
    assert not first[-1].done and first[-1].drain and relay.status == more
    middle = relay.feed(Packet(1, encode_ok(affected_rows=3, status=more)))
    assert not middle.done and len(middle.writes) == 1
    last = relay.feed(Packet(1, encode_ok(status=AUTOCOMMIT)))
    assert last.done and relay.done and relay.status == AUTOCOMMIT
    assert command.results == ["2 columns", "OK", "OK"] and command.rows == 1
    assert parse_ok(sent([middle])[0].payload, CAPABILITIES).affected_rows == 3
    with pytest.raises(AssertionError):
        relay.feed(Packet(1, encode_ok(status=AUTOCOMMIT)))


def test_an_error_ending_rows_follows_them_masked_and_ends_the_answer() -> None:
    """An ERR in place of the rows' end: the rows so far go out, then the error, its
    message masked (a duplicate key quotes the row); the run says which."""
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT)
    err = encode_err(1062, "23000", "Duplicate entry 'ada@example.com' for key 'email'")
    steps = feed(relay, result_set(ROWS[:1], err))
    last = steps[-1]
    assert last.done and not last.drain and len(last.writes) == 2
    *rows, error = sent(steps)
    assert len(rows) == 5 and is_err(error.payload) and error.seq == 6
    failed = parse_err(error.payload)
    assert (failed.code, failed.sqlstate) == (1062, "23000")
    assert "ada@example.com" not in failed.message
    assert command.error == "error 1062 (23000)"
    assert command.exchange.outcome["error.type"] == "1062"


def test_an_error_first_is_the_whole_answer() -> None:
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT)
    step = relay.feed(Packet(1, encode_err(1142, "42000", "SELECT command denied")))
    assert step.done and parse_err(sent([step])[0].payload).code == 1142
    assert command.error == "refused by the database 1142 (42000)"


def test_the_fronts_own_transaction_is_hidden_from_the_client() -> None:
    """While a measured write runs in the front's transaction, the OK the client gets
    does not say a transaction is open; the status the front keeps does."""
    relay = Relay(run(), MASKER, CAPABILITIES, AUTOCOMMIT,
                  hidden_status=SERVER_STATUS_IN_TRANS)
    step = relay.feed(Packet(1, encode_ok(affected_rows=1,
                                          status=AUTOCOMMIT | SERVER_STATUS_IN_TRANS)))
    assert step.done and relay.status == AUTOCOMMIT | SERVER_STATUS_IN_TRANS
    ok = parse_ok(sent([step])[0].payload, CAPABILITIES)
    assert ok.status == AUTOCOMMIT and ok.affected_rows == 1


def test_a_binary_view_of_results_rewrites_text_columns_alone() -> None:
    """character_set_results = binary (mysqldump's): a text column's definition says
    the binary character set (its length in bytes per character of it); one binary
    already (a number's) as it came; the rows unchanged."""
    relay = Relay(run(MaskSpec(detectors=frozenset(), fields=frozenset())), MASKER,
                  CAPABILITIES, AUTOCOMMIT, binary_results=True)
    fed = result_set(ROWS, encode_eof(status=AUTOCOMMIT))
    out = sent(feed(relay, fed))
    identifier, email = (parse_column_definition(p.payload) for p in out[1:3])
    assert out[1].raw() == fed[1].raw() and identifier.charset == 63
    assert (email.charset, email.length) == (63, 1020 // 4)
    assert out[2].raw() != fed[2].raw()
    assert [p.raw() for p in out[3:]] == [p.raw() for p in fed[3:]]


def test_an_unmaskable_binary_result_is_dropped_to_the_end_and_refused() -> None:
    """An execute's result with a column whose binary values the masker cannot read:
    none of it reaches the client, nor the results after it; the answer read to its
    end, the client gets a refusal (sequence id after the command's)."""
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT, binary=True)
    odd = [ColumnDefinition(name="v", type=17, length=4)]
    more = AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS
    fed = [*result_set([], encode_eof(status=more), columns=odd),
           *result_set([[b"x", None]], encode_eof(status=AUTOCOMMIT))]
    fed[3:3] = packets(3, b"\x00\x01\x02\x03")  # a row of the unreadable result
    steps = feed(relay, fed)
    assert all(s.writes == [] for s in steps[:-1]) and steps[-1].done
    [refusal] = sent(steps)
    assert refusal.seq == 1 and is_err(refusal.payload)
    assert "'v'" in parse_err(refusal.payload).message
    assert command.error == "refused: unmaskable result" and command.rows == 0
    [bad] = cast(_Exchange, command.exchange).refusals
    assert bad.error == "unmaskable_result"
    assert relay.status == AUTOCOMMIT


def test_rows_ended_by_an_ok_without_eofs_under_deprecate_eof() -> None:
    """With CLIENT_DEPRECATE_EOF no EOF follows the definitions, and an OK (0xFE
    header) ends the rows."""
    capabilities = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF
    command = run(MaskSpec(detectors=frozenset(), fields=frozenset()))
    relay = Relay(command, MASKER, capabilities, AUTOCOMMIT)
    fed = result_set(ROWS, encode_ok(status=AUTOCOMMIT, capabilities=capabilities,
                                     eof=True), eof=False)
    steps = feed(relay, fed)
    assert steps[-1].done and command.rows == 2
    assert [p.raw() for p in sent(steps)] == [p.raw() for p in fed]


def test_a_binary_result_is_masked_and_written_back_binary() -> None:
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT, binary=True)
    rows: list[list[bytes | None]] = [[struct.pack("<i", 7), b"ada@example.com"]]
    out = sent(feed(relay, result_set(rows, encode_eof(status=AUTOCOMMIT), binary=True)))
    assert out[4].payload[:1] == b"\x00"  # a binary row's header
    assert b"ada@" not in out[4].payload and struct.pack("<i", 7) in out[4].payload
    assert command.rows == 1 and cast(_Exchange, command.exchange).masked["email"] == 1


def test_the_server_asking_for_a_local_file_ends_the_relay_for_the_loop() -> None:
    step = Relay(run(), MASKER, CAPABILITIES, AUTOCOMMIT).feed(Packet(1, b"\xfbdata.csv"))
    assert step.done and step.writes == [] and step.local_file is not None
    assert step.local_file.payload == b"\xfbdata.csv"


def test_a_field_list_relays_definitions_to_its_eof() -> None:
    """COM_FIELD_LIST's answer: definitions as they came, then the EOF, in one write;
    the run records the columns, the status is the EOF's."""
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT, field_list=True)
    fed = packets(1, *map(encode_column_definition, COLUMNS),
                  encode_eof(status=AUTOCOMMIT | SERVER_STATUS_IN_TRANS))
    steps = feed(relay, fed)
    assert [len(s.writes) for s in steps] == [0, 0, 1] and steps[-1].done
    assert [p.raw() for p in sent(steps)] == [p.raw() for p in fed]
    assert parse_eof(fed[-1].payload).status == relay.status
    assert command.results == ["2 columns"] and b"email" in command.sample


def test_a_field_list_refused_by_the_server_sends_what_came_then_the_error() -> None:
    command = run()
    relay = Relay(command, MASKER, CAPABILITIES, AUTOCOMMIT, field_list=True)
    steps = feed(relay, packets(1, encode_column_definition(COLUMNS[0]),
                                encode_err(1146, "42S02", "Table 'shop.t' doesn't exist")))
    out = sent(steps)
    assert steps[-1].done and len(out) == 2 and is_err(out[1].payload)
    assert not is_ok(out[0].payload, CAPABILITIES)
    assert command.error == "error 1146 (42S02)"

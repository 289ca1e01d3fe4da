"""Terminal recordings in the store, on SQLite and on PostgreSQL: written in chunks by the
front's writer, read back whole by the audit command's reader, and pruned with their
records (held ones kept). The records are written by a real Recorder, the recordings by
a real CastWriter through the store's asynchronous client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from extproc.codecs.cast import MEDIA_TYPE, CastWriter
from extproc.recording import Evidence, retention
from extproc.recording.chain import Signer
from extproc.recording.record import BodyCapture, RecordedTarget
from extproc.recording.retention import Rules
from extproc.recording.terminal import TerminalRecordings, available, load
from extproc.store import Connection, StoreError, connect
from extproc.store.aio import open_store
from tests.recording.conftest import evidence, record

WEB_1 = RecordedTarget("web-1", "ssh", "prod", {})
DAY = 86400
OLD, NOW = time.time() - 40 * DAY, time.time()


def shell(n: int, session: str = "ssh-1", *, started: float | None = None,
          output: tuple[str, ...] = ("$ ", "uptime\r\n", " 10:00 up 1 day\r\n", "$ "),
          ) -> tuple[Evidence, list[bytes]]:
    """A SHELL exchange as the front records it, and its recording's chunks (one per
    output): the record keeps the recording's size and SHA-256, the store the chunks."""
    started = NOW if started is None else started
    cast = CastWriter(80, 24, "xterm-256color", f"web-1 ({session})", started)
    chunks = [cast.take()]
    for i, text in enumerate(output):
        cast.output(0.25 * (i + 1), text)
        chunks.append(cast.take())
    found = evidence(n, method="SHELL", path="/web-1", session=session, started=started,
                     target=WEB_1)  # type: ignore[arg-type]
    found.response_body = BodyCapture(0)
    for chunk in chunks:
        found.response_body.add(chunk)
    found.response_type = MEDIA_TYPE
    return found, chunks


async def store_chunks(url: str, session: str, recording_id: str,
                       chunks: list[bytes]) -> None:
    """The chunks, as the front's writer appends them."""
    store = await open_store(url)
    try:
        recordings = TerminalRecordings(store)
        for seq, chunk in enumerate(chunks):
            await recordings.append(session, recording_id, seq, chunk)
    finally:
        await store.close()


@pytest.fixture
def connection(store_url: str) -> Iterator[Connection]:
    opened = connect(store_url)
    yield opened
    opened.close()


def recorded(connection: Connection) -> list[str]:
    return sorted(r for (r,) in connection.execute(
        "SELECT DISTINCT recording_id FROM terminal_recordings"))


async def test_chunks_come_back_whole_by_session_or_trace(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    first, chunks = shell(1, "ssh-1")
    other, other_chunks = shell(2, "ssh-2", output=("elsewhere",))
    await record(store_url, signer, [first, other])
    await store_chunks(store_url, "ssh-1", first.trace_id, chunks)
    await store_chunks(store_url, "ssh-2", other.trace_id, other_chunks)

    (stored,) = load(connection, "ssh-1")
    assert (stored.recording_id, stored.session_id, stored.chunks, stored.missing) == (
        first.trace_id, "ssh-1", 5, ())
    assert stored.data == b"".join(chunks)
    assert stored.data.startswith(b'{"version": 2, "width": 80')
    assert NOW - 60 < stored.first_us / 1e6 <= stored.last_us / 1e6 < time.time() + 1
    assert load(connection, first.trace_id) == [stored]  # replay takes a trace id too
    assert [s.recording_id for s in load(connection, "ssh-2")] == [other.trace_id]
    assert load(connection, "ssh-3") == []


async def test_a_session_named_apart_is_found_by_its_records_trace(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    """The records' session and the front's may differ (a header the agent sent):
    the recording is found through the trace of its record."""
    found, chunks = shell(1, "case-9")
    await record(store_url, signer, [found])
    await store_chunks(store_url, "front-session", found.trace_id, chunks)
    assert [s.session_id for s in load(connection, "case-9")] == ["front-session"]


async def test_a_chunk_is_never_overwritten_and_a_missing_one_is_named(
    store_url: str, connection: Connection,
) -> None:
    store = await open_store(store_url)
    try:
        recordings = TerminalRecordings(store)
        for seq in (0, 1, 3, 5):
            await recordings.append("ssh-1", "t-1", seq, f"[{seq}]\n".encode())
        with pytest.raises(StoreError):
            await recordings.append("ssh-1", "t-1", 1, b"[forged]\n")
    finally:
        await store.close()
    (stored,) = load(connection, "t-1")
    assert (stored.data, stored.chunks, stored.missing) == (b"[0]\n[1]\n[3]\n[5]\n", 4, (2, 4))


async def test_a_recording_goes_with_the_last_record_of_its_trace(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    gone, gone_chunks = shell(1, "ssh-1", started=OLD)
    kept, kept_chunks = shell(2, "ssh-2", started=OLD)
    later = evidence(3, started=NOW)  # e.g. an approval of that shell: the same trace
    later.trace_id = kept.trace_id
    await record(store_url, signer, [gone, kept, later, evidence(4, started=NOW)])
    await store_chunks(store_url, "ssh-1", gone.trace_id, gone_chunks)
    await store_chunks(store_url, "ssh-2", kept.trace_id, kept_chunks)
    live = "f" * 32  # a session still running: no record yet
    await store_chunks(store_url, "ssh-3", live, gone_chunks[:2])

    pruned = retention.prune(connection, signer, Rules(30))
    assert (pruned.deleted, pruned.recordings) == ({"writer-a": 2}, 1)
    assert recorded(connection) == sorted([kept.trace_id, live])
    assert load(connection, "ssh-2")[0].data == b"".join(kept_chunks)


async def test_a_held_session_keeps_its_recording_until_released(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    held, chunks = shell(1, "case-7", started=OLD)
    await record(store_url, signer, [held, evidence(2, started=NOW)])
    await store_chunks(store_url, "case-7", held.trace_id, chunks)
    retention.hold(connection, "case-7", "litigation", "alice")
    assert retention.prune(connection, signer, Rules(30)).recordings == 0
    assert recorded(connection) == [held.trace_id]
    retention.release(connection, "case-7")
    assert retention.prune(connection, signer, Rules(30)).recordings == 1
    assert recorded(connection) == []


@pytest.mark.parametrize(("rules", "days_later", "kept"), [
    (Rules(30), 10, True),  # not past retention
    (Rules(30), 40, False),
    (Rules(30, {"billing": 365}), 40, True),  # past the store's, not every target's
    (Rules(30, {"billing": 0}), 4000, True),  # a target keeps for ever
    (Rules(0, {"billing": 30}), 4000, True),  # the store keeps for ever
])
async def test_a_recording_no_record_vouches_for_goes_past_every_retention(
    store_url: str, signer: Signer, connection: Connection, rules: Rules, days_later: int,
    kept: bool,
) -> None:
    """tollgate stopped mid-session: the recording's target is not known."""
    await record(store_url, signer, [evidence(1, session="ssh-1")])
    await store_chunks(store_url, "ssh-1", "a" * 32, [b"[0]\n"])
    now_us = int((time.time() + days_later * DAY) * 1e6)
    assert retention.prune(connection, signer, rules, now_us).recordings == (not kept)
    assert recorded(connection) == (["a" * 32] if kept else [])


async def test_a_held_session_keeps_a_recording_no_record_vouches_for(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    await record(store_url, signer, [evidence(1, session="case-7")])  # its login, say
    await store_chunks(store_url, "case-7", "a" * 32, [b"[0]\n"])
    retention.hold(connection, "case-7", "litigation", "alice")
    later_us = int((time.time() + 40 * DAY) * 1e6)
    assert retention.prune(connection, signer, Rules(30), later_us).recordings == 0
    assert recorded(connection) == ["a" * 32]


async def test_a_store_from_before_terminal_recordings_has_none(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    await record(store_url, signer, [evidence(1, started=OLD), evidence(2)])
    connection.execute("DROP TABLE terminal_recordings")
    connection.execute("DELETE FROM tollgate_schema WHERE component = 'terminal'")
    assert not available(connection)
    assert load(connection, "ssh-1") == []
    assert retention.prune(connection, signer, Rules(30)).deleted == {"writer-a": 1}

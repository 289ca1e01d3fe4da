"""The writer process: killed, it is replaced and nothing is lost or written twice;
it outlives a SIGTERM meant for its process group; it ends when closed, or when the
request process is gone, after writing what it was sent. On SQLite and
on PostgreSQL, with conditions waited on, each with a deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from extproc.recording import Recorder, RecordingUnavailable
from extproc.recording import recorder as recorder_module
from extproc.recording import store as record_store
from extproc.recording.chain import Signer
from extproc.recording.writer import batched, unbatched
from extproc.store import connect
from tests.cli.test_audit_cli import REPO, audit, write_config
from tests.recording.conftest import MASKER, evidence, settings, table_away
from tests.recording.test_writer import count, wait_until


def started(url: str, signer: Signer, **overrides: object) -> Recorder:
    recorder = Recorder(url, settings(**overrides), signer, MASKER)
    recorder.start()
    return recorder


def kill(recorder: Recorder, sig: signal.Signals = signal.SIGKILL) -> int:
    pid = recorder.writer_process
    assert pid is not None
    os.kill(pid, sig)
    return pid


def replaced(recorder: Recorder, pid: int) -> None:
    wait_until(lambda: recorder.writer_process != pid and recorder.failure is None,
               "a new writer process")


def traces(url: str) -> list[str]:
    connection = connect(url)
    try:
        return [row.trace_id for row in record_store.chain_rows(connection)]
    finally:
        connection.close()


async def test_a_killed_writer_refuses_exchanges_until_replaced_then_writes_what_it_had(
    store_url: str, signer: Signer, caplog: pytest.LogCaptureFixture,
) -> None:
    """Records the writer holds unwritten (the store is away) when it is killed are sent
    to its successor, which cannot start either until the store is back: meanwhile new
    exchanges are refused, saying why."""
    caplog.set_level(logging.INFO, "tollgate")
    recorder = started(store_url, signer)
    with table_away(store_url):
        for n in range(5):
            recorder.admit()
            recorder.submit(evidence(n))
        await asyncio.to_thread(wait_until, lambda: recorder.failure is not None,
                                "the writer notices the outage")
        first = kill(recorder)
        await asyncio.to_thread(
            wait_until, lambda: "writer process exited" in (recorder.failure or ""),
            "the death noticed")
        with pytest.raises(RecordingUnavailable, match="recording writer process exited"):
            recorder.admit()
    await asyncio.to_thread(wait_until, lambda: recorder.written == 5,
                            "the successor writes the five records")
    assert recorder.writer_process != first
    recorder.admit()  # admitted again
    recorder.submit(evidence(5))
    await recorder.close()
    assert sorted(traces(store_url)) == [f"{n:032x}" for n in range(6)]
    logged = caplog.text
    assert "the writer process exited unexpectedly (exit code -9) with 5 records unwritten" \
        in logged
    assert "the store refused a write" in logged  # the writer process's own line, relayed


@pytest.mark.e2e  # `tollgate audit verify` run as a process
def test_messages_batched_are_unbatched_as_they_were() -> None:
    messages = [b"e" + bytes(range(256)) * n for n in range(4)] + [b"m", b"q"]
    assert unbatched(batched(messages)) == messages
    assert batched([b"e1"]) == b"e1"  # one message goes as it is
    assert unbatched(b"e1") == [b"e1"]


async def test_evidence_submitted_together_crosses_in_one_message_in_order(
    sqlite_url: str, signer: Signer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exchanges finished together are written to the pipe together; a strict commit
    goes at once, after them, and closing sends what is left before its stop."""
    sent: list[int] = []

    def counted(messages: list[bytes]) -> bytes:
        sent.append(len(messages))
        return batched(messages)

    monkeypatch.setattr(recorder_module, "batched", counted)
    recorder = started(sqlite_url, signer)
    for n in range(20):
        recorder.admit()
        recorder.submit(evidence(n))
    await recorder.commit(evidence(20))
    for n in range(21, 30):
        recorder.admit()
        recorder.submit(evidence(n))
    await recorder.close()
    assert sent == [21, 10]  # 20 and the strict one; 9 and the stop
    assert traces(sqlite_url) == [f"{n:032x}" for n in range(30)]


async def test_a_writer_killed_twice_under_a_stream_loses_nothing_and_its_chain_verifies(
    store_url: str, signer: Signer, tmp_path: Path,
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    recorder = started(store_url, signer, batch_size=8, flush_seconds=0.002,
                       checkpoint_every=50, checkpoint_file=anchors)
    for n in range(300):
        recorder.admit()
        recorder.submit(evidence(n))
        if n in (100, 200):
            await asyncio.to_thread(wait_until, lambda: recorder.written > 0, "some written")
            await asyncio.to_thread(replaced, recorder, kill(recorder))
    await recorder.close()
    assert recorder.written == 300
    found = traces(store_url)
    assert sorted(found) == sorted(f"{n:032x}" for n in range(300))  # none lost, none twice
    result = audit(write_config(tmp_path, store_url, checkpoint_file=anchors), "verify")
    assert result.returncode == 0, result


async def test_the_writer_ignores_sigterm_and_writes_all_it_is_sent_until_closed(
    sqlite_url: str, signer: Signer,
) -> None:
    """A SIGTERM sent to tollgate's whole process group (systemd, a terminal) reaches
    the writer too: it keeps writing what in-flight exchanges hand over while tollgate
    drains, and stops when closed."""
    recorder = started(sqlite_url, signer)
    recorder.admit()
    recorder.submit(evidence(1))
    pid = kill(recorder, signal.SIGTERM)
    for n in range(2, 5):
        recorder.admit()
        recorder.submit(evidence(n))
    await recorder.close()
    assert recorder.written == 4 and count(sqlite_url) == 4
    assert recorder.writer_process == pid  # the same process did it all
    with pytest.raises(ProcessLookupError):  # and it has ended
        os.kill(pid, 0)


ABANDONING = """
import os, sys
from pathlib import Path
from extproc.recording import Recorder
from extproc.recording.chain import Signer
from extproc.recording.writer import batched, unbatched
from tests.recording.conftest import MASKER, evidence, settings

recorder = Recorder(sys.argv[1], settings(), Signer.from_file(Path(sys.argv[2])), MASKER)
recorder.start()
for n in range(50):
    recorder.admit()
    recorder.submit(evidence(n))
print(recorder.writer_process, flush=True)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("leaving", ["os._exit(0)", "raise SystemExit(1)"])
def test_a_writer_whose_request_process_is_gone_writes_what_it_was_sent_then_ends(
    sqlite_url: str, signer: Signer, tmp_path: Path, leaving: str,
) -> None:
    """tollgate gone without closing the recorder — killed (as os._exit leaves), or
    leaving on an error (as multiprocessing waits for its children at exit): what it
    had sent is written all the same, and nothing waits for anything forever."""
    result = subprocess.run([sys.executable, "-c", ABANDONING + leaving, sqlite_url,
                             str(tmp_path / "audit.key")],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    pid = int(result.stdout)
    wait_until(lambda: not running(pid), "the writer process ends")
    assert count(sqlite_url) == 50


FORKING = """
import os, sys, threading
from pathlib import Path
from extproc.recording import Recorder
from extproc.recording.chain import Signer
from tests.recording.conftest import MASKER, settings

if sys.argv[3] == "threaded":  # a thread running, as the tests' own processes run many
    threading.Thread(target=threading.Event().wait, daemon=True).start()
recorder = Recorder(sys.argv[1], settings(), Signer.from_file(Path(sys.argv[2])), MASKER)
recorder.start()
writer = recorder.writer_process
parent = int(Path(f"/proc/{writer}/stat").read_text().rpartition(")")[2].split()[1])
print(writer, parent, os.getpid(), flush=True)
os._exit(0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("threads", ["alone", "threaded"])
def test_a_process_running_one_thread_forks_its_writer_itself(
    sqlite_url: str, signer: Signer, tmp_path: Path, threads: str,
) -> None:
    """`tollgate serve` opens its recorder before any thread starts: the writer is its
    own child, forked at once. A process already running a thread has it forked by the
    fork server instead (a fork could copy a lock another thread holds)."""
    result = subprocess.run([sys.executable, "-c", FORKING, sqlite_url,
                             str(tmp_path / "audit.key"), threads],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    writer, parent, request = map(int, result.stdout.split())
    assert (parent == request) == (threads == "alone")
    wait_until(lambda: not running(writer), "the writer process ends")

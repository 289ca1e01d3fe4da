"""`tollgate audit replay` of a session with a terminal recording, run as the command it
is: records written through the Recorder and chunks through the front's writer into a
SQLite store, then the recording checked against its record and played, or written out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.recording.chain import Signer
from extproc.store import connect
from tests.cli.test_audit_cli import audit, execute, one_line, write_config
from tests.recording.conftest import evidence, record
from tests.ssh.test_recordings import OLD, WEB_1, shell, store_chunks
from tests.support.cli import tollgate

pytestmark = pytest.mark.e2e  # `tollgate audit` run from its command line (tests/support/cli.py)

# What the host showed: colours (played), a title and a cursor position report (not).
OUTPUT = ("\x1b]0;deploy@web-1\a\x1b[1;32mdeploy@web-1\x1b[0m:~$ ",
          "uptime\r\n", " 10:00:00 up 1 day\x1b[6n\r\n", "\x1b[1;32m$ ")
PLAYED = "\x1b[1;32mdeploy@web-1\x1b[0m:~$ uptime\r\n 10:00:00 up 1 day\r\n\x1b[1;32m$ \x1b[0m"


def replayed(config: Path, *args: str) -> tuple[int, str]:
    """`tollgate audit replay`'s exit status and output, its line ends as written (what a
    terminal is sent: the recording's CR LF)."""
    result = tollgate("audit", "replay", *args, "--config", config, newlines=False)
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout


@pytest.fixture
async def session(sqlite_url: str, signer: Signer, tmp_path: Path) -> tuple[Path, str]:
    """Session ssh-1: its shell (writer-a:1, recorded in 5 chunks) and a line typed in
    it (writer-a:2); the config naming the store. Returns the config and the recording."""
    found, chunks = shell(1, "ssh-1", output=OUTPUT)
    line = evidence(2, method="LINE", path="/web-1", session="ssh-1",
                    target=WEB_1)  # type: ignore[arg-type]
    await record(sqlite_url, signer, [found, line])
    await store_chunks(sqlite_url, "ssh-1", found.trace_id, chunks)
    return write_config(tmp_path, sqlite_url), found.trace_id


def test_a_session_is_listed_then_its_recording_verified_and_played(
    session: tuple[Path, str],
) -> None:
    config, recording = session
    status, out = replayed(config, "--session", "ssh-1", "--no-wait")
    assert status == 0, out
    listing, played = out.split(f"\n== terminal recording {recording} ", 1)
    assert listing.startswith("session ssh-1: 2 records, oldest first\n")
    assert "\n== writer-a:1  " in listing and "\n== writer-a:2  " in listing
    assert "  request   SHELL /web-1" in listing
    lines = played.split("\n")
    assert lines[0].startswith("(session ssh-1): 5 chunks, ")
    assert lines[1].startswith("  verified: its size and SHA-256 are those record writer-a:1 "
                               "keeps (")
    assert lines[2] == "  playing it as the agent saw it (speed 1, idle gaps cut to 0 s):"
    assert "\n".join(lines[3:]) == (
        f"{PLAYED}\n== end of terminal recording {recording}: verified\n")


def test_the_playing_options_are_said(session: tuple[Path, str]) -> None:
    config, _ = session
    status, out = replayed(config, "--session", "ssh-1", "--speed", "100", "--max-wait",
                           "0.01")
    assert status == 0, out
    assert f"  playing it as the agent saw it (speed 100, idle gaps cut to 0.01 s):\n{PLAYED}" \
        in out


@pytest.mark.parametrize("by", ["trace", "record"])
def test_a_trace_or_record_replay_plays_its_recording_too(session: tuple[Path, str],
                                                          by: str) -> None:
    config, recording = session
    result = audit(config, "replay", recording if by == "trace" else "writer-a:1",
                   "--no-wait")
    assert result.returncode == 0, result
    assert result.stdout.count("\n== writer-a:") == 1
    assert f"== end of terminal recording {recording}: verified\n" in result.stdout


@pytest.mark.parametrize(("tamper", "said"), [
    ("UPDATE terminal_recordings SET data = REPLACE(data, 'uptime', 'reboot')",
     "bytes, sha256 "),
    ("DELETE FROM terminal_recordings WHERE chunk = 2", "; chunks 2 are missing"),
])
def test_a_recording_edited_in_the_store_does_not_match_and_exits_1(
    session: tuple[Path, str], sqlite_url: str, tamper: str, said: str,
) -> None:
    config, recording = session
    execute(sqlite_url, tamper)
    result = audit(config, "replay", "--session", "ssh-1", "--no-wait")
    assert result.returncode == 1, result
    verdict = next(line for line in result.stdout.splitlines()
                   if line.startswith("  DOES NOT MATCH"))
    assert verdict.startswith("  DOES NOT MATCH the record: record writer-a:1 keeps ")
    assert said in verdict
    assert result.stdout.endswith(
        f"== end of terminal recording {recording}: DOES NOT MATCH the record\n")


def test_a_recording_that_cannot_be_played_is_cut_short_and_exits_1(
    session: tuple[Path, str], sqlite_url: str,
) -> None:
    config, recording = session
    execute(sqlite_url, "UPDATE terminal_recordings SET data = 'garbage' WHERE chunk = 3")
    status, out = replayed(config, "--session", "ssh-1", "--no-wait")
    assert status == 1, out
    # What came before the fault is played; the terminal is restored.
    assert out.endswith(
        "uptime\r\n\n"
        f"== terminal recording {recording} cut short (line 4: not JSON): DOES NOT MATCH "
        "the record\n")


async def test_a_recording_no_record_vouches_for_is_played_unverified(
    session: tuple[Path, str], sqlite_url: str,
) -> None:
    config, _ = session
    await store_chunks(sqlite_url, "ssh-1", "e" * 32, shell(9, output=("orphan",))[1])
    result = audit(config, "replay", "--session", "ssh-1", "--no-wait")
    assert result.returncode == 0, result
    assert ("  NOT VERIFIED: no record of its exchange (the session may still be open, or "
            "tollgate stopped before its end)\n") in result.stdout
    assert result.stdout.endswith(
        f"orphan\n== end of terminal recording {'e' * 32}: NOT VERIFIED\n")


async def test_cast_writes_each_recording_to_a_file(session: tuple[Path, str],
                                                    sqlite_url: str, tmp_path: Path) -> None:
    config, recording = session
    second = shell(3, output=("second",))[1]
    await store_chunks(sqlite_url, "ssh-1", "e" * 32, second)
    out = tmp_path / "session.cast"
    result = audit(config, "replay", "--session", "ssh-1", "--cast", str(out))
    assert result.returncode == 0, result
    assert f"  written to {out}\n" in result.stdout
    assert f"  written to {tmp_path / 'session-2.cast'}\n" in result.stdout
    assert "playing" not in result.stdout
    store = connect(sqlite_url)
    try:
        (data,) = store.execute("SELECT data FROM terminal_recordings WHERE recording_id = ? "
                                "AND chunk = 4", (recording,))[0]
    finally:
        store.close()
    assert out.read_text().endswith(data)
    assert json.loads(out.read_text().splitlines()[0])["title"] == "web-1 (ssh-1)"
    assert (tmp_path / "session-2.cast").read_bytes() == b"".join(second)


def test_json_lists_the_records_alone(session: tuple[Path, str]) -> None:
    config, _ = session
    result = audit(config, "replay", "--session", "ssh-1", "--json")
    assert result.returncode == 0, result
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [
        "writer-a:1", "writer-a:2"]


@pytest.mark.parametrize(("args", "said"), [
    (["--json", "--cast", "x.cast"], "replay --json lists records only: it takes no --speed, "
                                     "--max-wait, --no-wait or --cast"),
    (["--cast", "x.cast", "--speed", "2"], "replay --cast writes recordings instead of "
                                           "playing them: it takes no --speed, --max-wait or "
                                           "--no-wait"),
    (["--speed", "0"], "--speed: expected a number > 0, got 0"),
    (["--max-wait", "-1"], "--max-wait: expected a number of seconds >= 0, got -1"),
])
def test_playing_options_that_make_no_sense_are_refused(session: tuple[Path, str],
                                                        args: list[str], said: str) -> None:
    config, _ = session
    assert one_line(audit(config, "replay", "--session", "ssh-1", *args)) == said


def test_a_cast_file_that_cannot_be_written_is_one_line(session: tuple[Path, str],
                                                        tmp_path: Path) -> None:
    config, _ = session
    where = tmp_path / "absent" / "x.cast"
    assert one_line(audit(config, "replay", "--session", "ssh-1", "--cast", str(where))) == (
        f"--cast {where}: No such file or directory")


async def test_prune_takes_the_recordings_with_their_records(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    found, chunks = shell(1, "ssh-1", started=OLD)
    await record(sqlite_url, signer, [found, evidence(2)])
    await store_chunks(sqlite_url, "ssh-1", found.trace_id, chunks)
    result = audit(write_config(tmp_path, sqlite_url), "prune", "--older-than", "30d")
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[1:] == [
        "pruned 1 records; each chain keeps signed prune and cut statements:",
        "  writer-a: 1", "pruned 1 terminal recordings"]

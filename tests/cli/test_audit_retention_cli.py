"""`tollgate audit hold`, `prune`, `export` and `verify-export`, run as the commands they
are: a real SQLite store written through the Recorder, a config naming it and the key,
and the exit status and output an operator or auditor sees."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

import pytest

from extproc.recording.chain import Signer
from tests.cli.test_audit_cli import audit, one_line, write_config
from tests.recording.conftest import evidence, record

pytestmark = pytest.mark.e2e  # `tollgate audit` run as a process

OLD, NOW = time.time() - 40 * 86400, time.time()


@pytest.fixture
async def config(sqlite_url: str, signer: Signer, tmp_path: Path) -> Path:
    """writer-a: 1..4 forty days old (2 is session case-7's), 5 recent; anchored."""
    await record(sqlite_url, signer, [
        evidence(n, started=NOW if n == 4 else OLD, session="case-7" if n == 1 else None)
        for n in range(5)], checkpoint_every=2, batch_size=2,
        checkpoint_file=tmp_path / "tollgate-anchors.jsonl")
    return write_config(tmp_path, sqlite_url)


@pytest.fixture
def public_key(config: Path, tmp_path: Path) -> Path:
    path = tmp_path / "audit.pub"
    path.write_text(audit(config, "public-key").stdout)
    return path


def test_a_held_session_is_kept_by_prune_and_the_record_still_verifies(config: Path) -> None:
    held = audit(config, "hold", "--session", "case-7", "--reason", "litigation 2026-41")
    assert held.returncode == 0, held
    assert held.stdout == ("held session case-7: its 1 records, and those of their traces, "
                           "are kept until released\n")
    listed = audit(config, "hold", "--list").stdout.splitlines()
    assert listed[0].split() == ["SESSION", "HELD", "(UTC)", "BY", "REASON"]
    assert listed[1].split()[0] == "case-7"
    assert listed[1].split()[3:] == [getpass.getuser(), "litigation", "2026-41"]

    pruned = audit(config, "prune", "--older-than", "30d")
    assert pruned.returncode == 0, pruned
    assert pruned.stdout.splitlines()[1:] == [
        "pruned 3 records; each chain keeps signed prune and cut statements:",
        "  writer-a: 3", "kept, though past retention: 1 in held sessions"]
    verified = audit(config, "verify")  # the anchor log names checkpoints since cut: fine
    assert verified.returncode == 0, verified
    assert "pruned: up to 1; cut 3..4" in verified.stdout

    released = audit(config, "hold", "--release", "--session", "case-7")
    assert released.returncode == 0, released
    assert released.stdout.startswith("released session case-7 (held since ")
    assert audit(config, "hold", "--list").stdout == "no session is held\n"
    assert audit(config, "prune", "--older-than", "30d").stdout.splitlines()[2] == (
        "  writer-a: 1")
    assert audit(config, "verify").returncode == 0


def test_prune_without_retention_or_a_duration_is_refused(config: Path) -> None:
    assert one_line(audit(config, "prune")) == (
        f"no retention in {config} (store.retention_days is 0 and no target sets "
        "retention_days): give --older-than")


@pytest.mark.parametrize(("args", "said"), [
    (["--session", "nope", "--reason", "typo"], "no record of session 'nope' in "),
    (["--session", "case-7"], "hold: give --reason TEXT (why the session is held)"),
    (["--release"], "hold: give --session ID (with --reason TEXT, or --release), or --list"),
    (["--release", "--session", "case-7"], "session 'case-7' is not held"),
    (["--list", "--session", "case-7"], "hold --list takes no --session, --reason or "
                                        "--release"),
])
def test_hold_misuse_is_one_line(config: Path, args: list[str], said: str) -> None:
    assert one_line(audit(config, "hold", *args)).startswith(said)


@pytest.mark.parametrize("form", ["jsonl", "ocsf"])
def test_an_export_verifies_away_from_tollgate_with_the_public_key(
    config: Path, public_key: Path, tmp_path: Path, form: str,
) -> None:
    out = tmp_path / f"export.{form}"
    exported = audit(config, "export", "--since", "60d", "--format", form, "--out", str(out))
    assert exported.returncode == 0, exported
    assert exported.stdout == (f"exported 5 records of 1 chains and 3 signed statements to "
                               f"{out} ({form})\n")
    # No config on the auditor's side: only the file and the public key.
    checked = audit(tmp_path / "absent.yaml", "verify-export", str(out),
                    "--public-key", str(public_key))
    assert checked.returncode == 0, checked
    assert checked.stdout.splitlines()[2:] == [
        "chain writer-a: 5 records in 1 linked run",
        "  1..5: 1..5 vouched for by a signed checkpoint",
        "intact: every hash, link and signature in the file checks"]


def test_a_tampered_export_exits_1_and_says_where(config: Path, public_key: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    audit(config, "export", "--since", "60d", "--format", "jsonl", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    lines[1]["content"] = lines[1]["content"].replace("orders", "refund")
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    checked = audit(config, "verify-export", str(out), "--public-key", str(public_key))
    assert checked.returncode == 1, checked
    assert checked.stdout.splitlines()[-2:] == [
        "ALTERED: 1 problems",
        "  line 2 (writer-a:2): its content does not match its hash (edited)"]


def test_export_to_standard_output_is_the_lines_alone(config: Path) -> None:
    result = audit(config, "export", "--since", "60d", "--format", "jsonl")
    assert result.returncode == 0, result
    kinds = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert kinds == ["record"] * 5 + ["statement"] * 3


def test_export_bad_input_exits_2(config: Path, tmp_path: Path) -> None:
    unknown = audit(config, "export", "--since", "1d", "--format", "xml")
    assert unknown.returncode == 2
    assert "argument --format: invalid choice: 'xml'" in unknown.stderr
    assert one_line(audit(config, "export", "--since", "5x", "--format", "jsonl")).startswith(
        "--since: expected a duration before now")
    assert one_line(audit(config, "export", "--since", "1d", "--until", "2d",
                          "--format", "jsonl")) == "--since 1d is not before --until 2d"
    assert one_line(audit(config, "export", "--since", "1d", "--target", "nope",
                          "--format", "jsonl")) == f"--target: no target 'nope' in {config}"
    assert one_line(audit(config, "export", "--since", "1d", "--format", "jsonl", "--out",
                          str(tmp_path / "no" / "dir" / "out"))).startswith(
        f"--out {tmp_path / 'no' / 'dir' / 'out'}: cannot write")
    assert one_line(audit(config, "verify-export", str(tmp_path / "none.jsonl"))) == (
        f"{tmp_path / 'none.jsonl'}: no such file")
    (tmp_path / "junk").write_text("hello\n")
    assert one_line(audit(config, "verify-export", str(tmp_path / "junk"))) == (
        f"{tmp_path / 'junk'}: no record or statement line: not a tollgate export")

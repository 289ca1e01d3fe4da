"""Each policy load leaves a record: which policies were in force, from when.

A decision names the revision that made it (`policy_revision`); without a record of the
load, the record would say which hash decided but not what that hash was, nor since when
it served. So every load, at start and on each reload, goes into the chain as a record of
kind `policy` (`meaning.policy`: the revision, the engine, each module's name and
SHA-256, the other files of the directory, why it loaded), through the same Recorder the
exchanges use. A load the record cannot take is logged, never raised: the policies serve
all the same, and the next load's record names them again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extproc.policy.sources import Modules
from extproc.recording.record import Evidence
from extproc.recording.recorder import RecordingUnavailable

if TYPE_CHECKING:
    from extproc.recording.recorder import Recorder

log = logging.getLogger("tollgate.policy")

# Files beside the modules that say what the policies mean or were checked against
# (schemas, data documents): their hashes are kept with the load.
_DATA_SUFFIXES = (".json", ".yaml", ".yml")


def policy_evidence(revision: str, engine: str, policy_dir: Path, modules: Modules,
                    why: str) -> Evidence:
    """The record of one load: `modules` as loaded (empty: OPA loads its own, and
    `revision` is the hash of what it holds)."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    loaded = {
        "revision": revision, "engine": engine, "directory": str(policy_dir), "why": why,
        "modules": [{"name": _relative(name, policy_dir),
                     "sha256": hashlib.sha256(source.encode()).hexdigest()}
                    for name, source in modules],
        "data_files": _data_files(policy_dir),
    }
    return Evidence("policy", time.time(), trace_id, span_id, {}, meaning_key="policy",
                    meaning=loaded, outcome={"tollgate.decision.action": "none"})


def record_load(recorder: Recorder, revision: str, engine: str, policy_dir: Path,
                modules: Modules, why: str) -> None:
    """Hand the load's record to the recorder; logged when it cannot take it."""
    try:
        recorder.admit()
    except RecordingUnavailable as exc:
        log.error("the load of policy revision %s could not be recorded: %s", revision, exc)
        return
    recorder.submit(policy_evidence(revision, engine, policy_dir, modules, why))


def _relative(name: str, policy_dir: Path) -> str:
    path = Path(name)
    return str(path.relative_to(policy_dir)) if path.is_relative_to(policy_dir) else name


def _data_files(policy_dir: Path) -> list[dict[str, Any]]:
    """The directory's data and schema files (hidden ones skipped, as for modules), each
    by name and SHA-256; one unreadable is named, without a hash."""
    found = []
    for path in sorted(policy_dir.rglob("*")):
        relative = path.relative_to(policy_dir)
        if (path.suffix not in _DATA_SUFFIXES or not path.is_file()
                or any(part.startswith(".") for part in relative.parts)):
            continue
        try:
            digest: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digest = None
        found.append({"name": str(relative), "sha256": digest})
    return found

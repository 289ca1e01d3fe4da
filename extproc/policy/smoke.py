"""A revision proves itself before it serves: its own Rego tests pass, and it decides
each of the representative inputs shipped with tollgate.

Compiling is not enough: a conflict between complete rules, a malformed decision (an
action `permit`), a decision undefined, a runtime error (`to_number` of a word, a
division by zero) all compile, then refuse every exchange they meet. So at start and at
each reload the revision decides the inputs of split_inputs.json (one set of exchanges of
every front: HTTP, SQL over HTTP, LLM, MCP, PostgreSQL, MySQL, SSH, Kubernetes, egress),
each checked as a real decision is (decision.py); an error or a malformed decision on any
of them, or a decision undefined on all of them, keeps it out of service. Through the
engine's `decide` only, so the embedded engine and OPA are checked alike. The Rego tests
run on the interpreter, from the files, where tollgate reads them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from pathlib import Path

import regorus

from extproc import __version__
from extproc.codecs import jsonenc, user_cache
from extproc.policy import rego_tests
from extproc.policy.engine import Decide
from extproc.policy.errors import PolicyError, PolicyLoadError, Undefined
from extproc.policy.sources import Modules, rego_files
from extproc.policy.split_check import shipped_inputs

CACHE = "policy-tests"  # the user cache's folder of packs whose Rego tests passed


class SmokeFailed(PolicyLoadError):
    """The revision loads, but fails its smoke set (the message says on what)."""


@functools.cache
def smoke_inputs() -> tuple[tuple[str, str], ...]:
    """The representative inputs, by name, as the JSON text a decision is asked on."""
    return tuple((name, jsonenc.dumps(value)) for name, value in shipped_inputs())


async def decides_inputs(decide: Decide) -> None:
    """Each smoke input decided (a `Vet`); SmokeFailed naming the first that fails."""
    undefined, failed = [], ""
    for name, input_json in smoke_inputs():
        try:
            await decide(input_json)
        except Undefined:
            undefined.append(name)
        except PolicyError as exc:
            failed = f"smoke input {name!r}: {exc}"
            break
    # Raised outside the handlers: an exception raised in one stays in a cycle with its
    # frame, and the candidate's regorus engines with it, for the collector to free on
    # whatever thread it next runs on (regorus's engines must be dropped where made:
    # off_loop's threads run Python too).
    if failed:
        raise SmokeFailed(failed)
    if len(undefined) == len(smoke_inputs()):
        raise SmokeFailed(f"the decision is undefined on every smoke input ({undefined[0]!r} "
                          "the first): is the query's rule named as the config says?")


def summary(tests: int, milliseconds: float) -> str:
    """What a revision that passed its smoke set was checked on, for the log."""
    return (f"smoke set passed: {tests} Rego tests, {len(smoke_inputs())} representative "
            f"inputs, {milliseconds:.0f} ms")


async def tests_pass(policy_dir: Path, pack: Modules | None = None) -> int:
    """The directory's Rego tests run, giving the event loop a turn after each (on the
    loop's own thread: regorus's engines must be dropped where they were made, which a
    worker thread's garbage collection does not promise); how many passed, or
    SmokeFailed naming the first that did not. `pack`: its .rego files as read already
    (sources.read_pack), run as read. Files that passed once, to the byte, with
    this tollgate and this regorus, pass again: that is remembered (`_passed_before`),
    so that each worker and each restart of an unchanged pack does not pay ~1 s again
    (codecs/user_cache.py says where, and why only the user's own files are read)."""
    key = files_key(policy_dir, pack)
    if (remembered := _passed_before(key)) is not None:
        return remembered
    passed, failed = 0, []
    results = (rego_tests.each_result(policy_dir) if pack is None
               else rego_tests.each_result_of(pack))
    for result in results:
        passed += result.passed
        if not result.passed:
            failed.append(result)
        await asyncio.sleep(0)
    if failed:
        first = failed[0]
        raise SmokeFailed(
            f"{len(failed)} of its {passed + len(failed)} Rego tests fail: {first.test.rule} "
            f"({first.test.file}:{first.test.line}) {first.outcome}"
            + (f": {first.detail}" if first.detail else ""))
    _remember(key, passed)
    return passed


def files_key(policy_dir: Path, pack: Modules | None = None) -> str:
    """What the Rego tests' outcome depends on: every .rego file (tests too, as `pack`
    holds them, else as the directory does) and its path, this tollgate's version and
    the regorus build installed."""
    engine = Path(str(regorus.__file__)).stat()
    digest = hashlib.sha256(f"{__version__} {engine.st_size} {engine.st_mtime_ns}".encode())
    if pack is None:
        files = [(path, path.read_bytes())
                 for path in (rego_files(policy_dir) if policy_dir.is_dir() else [])]
    else:
        files = [(Path(name), source.encode()) for name, source in pack]
    for path, data in files:
        digest.update(b"\0" + str(path.relative_to(policy_dir)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


def _passed_before(key: str) -> int | None:
    try:
        return int(user_cache.read(CACHE, key) or b"")
    except ValueError:
        return None


def _remember(key: str, passed: int) -> None:
    user_cache.write(CACHE, key, str(passed).encode())

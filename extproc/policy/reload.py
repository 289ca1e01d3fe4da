"""Policies change while tollgate serves: on SIGHUP, and when the policy files change.

A new version replaces the old only once it has loaded (compiled, or accepted by OPA)
and passed its smoke set (smoke.py: its Rego tests, the representative inputs); a
broken one leaves the old serving, says why in the log (ERROR), counts
`tollgate_policy_reload_failures_total` and raises an alert (`failed`). Nothing here can
stop the service: a reload that fails is told, never raised. The smoke set of a reload
runs apart (apart.py: once for every worker, in a process of low priority), while the
old revision keeps deciding; at start, nothing is served yet, and it runs here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from extproc import metrics
from extproc.policy import PolicyEngine, PolicyLoadError, apart
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.opa import OpaEngine
from extproc.policy.smoke import SmokeFailed, decides_inputs, summary, tests_pass
from extproc.policy.sources import Modules, asked_or_due, fingerprint, modules_of, read_pack

log = logging.getLogger("tollgate.policy")

RELOAD_FAILED = "tollgate.policy_reload_failed"
"""The alert a refused reload raises (an alert of tollgate's own, exchange/alerts.py)."""


async def vetted_load(engine: PolicyEngine, policy_dir: Path, pack: Modules | None) -> str:
    """Load `pack` (the directory's .rego files, as read: sources.read_pack) into the
    engine once it passes its smoke set, or raise PolicyLoadError and keep the old one;
    what was checked, for the log. The set runs apart (apart.py): all of it for the
    embedded engine, which then compiles the revision that passed, the same bytes; the
    Rego tests for OPA, then asked the inputs once the revision is uploaded. `pack` None:
    OPA loads its own files, and there are no files here to run the Rego tests of."""
    started = time.perf_counter()
    if pack is None:
        await engine.load([], decides_inputs)
        return summary(0, (time.perf_counter() - started) * 1000)
    if isinstance(engine, EmbeddedEngine):
        verdict = await apart.check(policy_dir, pack, engine.query)
        await engine.load(modules_of(pack))
        return verdict.passed()
    verdict = await apart.check(policy_dir, pack, None)
    await engine.load(modules_of(pack), decides_inputs)
    return (f"{summary(verdict.tests, (time.perf_counter() - started) * 1000)}, its Rego "
            f"tests apart in process {verdict.checked_by}")


async def vetted_start(engine: PolicyEngine, policy_dir: Path, files: bool = True) -> str:
    """The same smoke set, on what the engine loaded at start, before anything is served
    (fail closed): SmokeFailed, saying so, when the revision fails it."""
    try:
        started = time.perf_counter()
        tests = await tests_pass(policy_dir) if files else 0
        await decides_inputs(engine.vetting if isinstance(engine, OpaEngine) else engine.decide)
        return summary(tests, (time.perf_counter() - started) * 1000)
    except SmokeFailed as exc:
        failed = str(exc)  # raised outside the handler (smoke.py says why)
    raise SmokeFailed(f"the policies of {policy_dir} (revision {engine.revision}) fail "
                      f"their smoke set, so tollgate does not serve them: {failed}")


class PolicyReloader:
    def __init__(
        self, engine: PolicyEngine, policy_dir: Path, watch_seconds: float, upload: bool = True,
        loaded: Callable[[Modules, str], None] | None = None,
        failed: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        """`loaded`: told of each reload that serves, with the modules and why (the
        record keeps each load: recording/policy_loads.py); `failed`: told of each one
        refused, with what happened and its cause, each in one line (it raises the alert
        RELOAD_FAILED, once per cause: a SIGHUP on the same broken files is no news)."""
        self._engine = engine
        self._loaded = loaded
        self._failed = failed
        self._dir = policy_dir
        # With OPA loading its own policies, there are no files here to watch.
        self._watch = watch_seconds if upload else 0.0
        self._upload = upload
        self._seen = fingerprint(policy_dir)
        self.requested = asyncio.Event()  # set by SIGHUP
        metrics.policy_revision(engine.revision)

    async def run(self) -> None:
        """Reload when asked or when the files change, until cancelled."""
        while True:
            asked = await asked_or_due(self.requested, self._watch)
            now = fingerprint(self._dir)
            if asked or now != self._seen:
                self._seen = now
                await self.reload("SIGHUP" if asked else "files changed")

    async def reload(self, why: str) -> bool:
        """Load the directory's policies now; True when the engine serves them."""
        old = self._engine.revision
        try:
            pack = read_pack(self._dir) if self._upload else None
            modules = [] if pack is None else modules_of(pack)
            checked = await vetted_load(self._engine, self._dir, pack)
        except PolicyLoadError as exc:
            log.error("policies not reloaded (%s); still serving revision %s: %s", why, old, exc)
            await self._refused(why, old, str(exc))
            return False
        except Exception as exc:
            log.exception("policies not reloaded (%s); still serving revision %s", why, old)
            await self._refused(why, old, f"{type(exc).__name__}: {exc}")
            return False
        metrics.policy_revision(self._engine.revision)
        log.info("policies reloaded (%s): revision %s -> %s (%s)", why, old,
                 self._engine.revision, checked)
        if self._loaded is not None:
            self._loaded(modules, why)
        return True

    async def _refused(self, why: str, old: str, cause: str) -> None:
        metrics.policy_reload_failed()
        if self._failed is None:
            return
        try:
            await self._failed(f"policies not reloaded ({why}); still serving revision "
                               f"{old}: {cause}", cause)
        except Exception:  # the alert's own failure is logged; the old revision serves
            log.exception("the alert of a refused policy reload could not be raised")

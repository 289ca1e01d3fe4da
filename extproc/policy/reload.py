"""Policies change while tollgate serves: on SIGHUP, and when the policy files change.

A new version replaces the old only once it has loaded (compiled, or accepted by
OPA); a broken one leaves the old serving and says why in the log. Nothing here
can stop the service: a reload that fails is logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from extproc import metrics
from extproc.policy import PolicyEngine, PolicyLoadError
from extproc.policy.sources import Modules, fingerprint, read_modules

log = logging.getLogger("tollgate.policy")


class PolicyReloader:
    def __init__(
        self, engine: PolicyEngine, policy_dir: Path, watch_seconds: float, upload: bool = True,
        loaded: Callable[[Modules, str], None] | None = None,
    ) -> None:
        """`loaded`: told of each reload that serves, with the modules and why (the
        record keeps each load: recording/policy_loads.py)."""
        self._engine = engine
        self._loaded = loaded
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.requested.wait(), self._watch or None)
            asked = self.requested.is_set()
            self.requested.clear()
            now = fingerprint(self._dir)
            if asked or now != self._seen:
                self._seen = now
                await self.reload("SIGHUP" if asked else "files changed")

    async def reload(self, why: str) -> bool:
        """Load the directory's policies now; True when the engine serves them."""
        old = self._engine.revision
        try:
            modules = read_modules(self._dir) if self._upload else []
            await self._engine.load(modules)
        except PolicyLoadError as exc:
            metrics.policy_reload_failed()
            log.error("policies not reloaded (%s); still serving revision %s: %s", why, old, exc)
            return False
        except Exception:
            metrics.policy_reload_failed()
            log.exception("policies not reloaded (%s); still serving revision %s", why, old)
            return False
        metrics.policy_revision(self._engine.revision)
        log.info("policies reloaded (%s): revision %s -> %s", why, old, self._engine.revision)
        if self._loaded is not None:
            self._loaded(modules, why)
        return True

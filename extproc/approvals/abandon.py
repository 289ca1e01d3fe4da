"""Approvals held by a replica that died are marked abandoned, and the record says so.

A request held for approval waits on the replica that took it. Killed (SIGKILL, a lost
host), that replica answers nobody and cannot record the held exchange's end; its
approval would stay pending, decidable, with nobody waiting, and a later retry would run
on a grant given for a request that is gone. Every process sweeps, every heartbeat, for
approvals whose waiter stopped without letting go on a replica not heard of for
`approvals.abandon_seconds` (store.py's `abandon`); each one found is marked, logged,
counted and recorded (kind `approval`, `via: abandoned`, in the held request's trace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping

from extproc import metrics
from extproc.approvals.model import Approval
from extproc.approvals.store import ApprovalStore
from extproc.config import Target
from extproc.recording.record import Evidence
from extproc.recording.recorder import Recorder, RecordingUnavailable
from extproc.store import StoreError

log = logging.getLogger("tollgate.approvals")


async def sweep(store: ApprovalStore, recorder: Recorder, targets: Mapping[str, Target],
                silent_seconds: float) -> list[Approval]:
    """Mark and record the abandoned approvals found now. Raises StoreError."""
    marked = await store.abandon(silent_seconds)
    for approval in marked:
        log.warning("approval %s abandoned: %s, which held its request (%s), stopped "
                    "without answering it", approval.id, approval.held_by, approval.trace_id)
        try:
            recorder.admit()
        except RecordingUnavailable as exc:
            log.error("the abandonment of approval %s could not be recorded: %s",
                      approval.id, exc)
            continue
        recorder.submit(_evidence(approval, targets.get(approval.target)))
    if marked:
        metrics.approvals_abandoned(len(marked))
    return marked


async def run(store: ApprovalStore, recorder: Recorder, targets: Mapping[str, Target],
              silent_seconds: float, every: float) -> None:
    """Sweep every `every` seconds until cancelled; a store that cannot answer is
    swept again at the next beat."""
    while True:
        with contextlib.suppress(StoreError):
            await sweep(store, recorder, targets, silent_seconds)
        await asyncio.sleep(every)


def _evidence(approval: Approval, target: Target | None) -> Evidence:
    return Evidence(
        "approval", time.time(), approval.trace_id, os.urandom(8).hex(), {}, target=target,
        approval=approval.for_record("abandoned"),
        outcome={"tollgate.decision.action": "abandoned"})

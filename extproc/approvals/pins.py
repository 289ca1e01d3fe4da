"""MCP tool definitions pinned per target: trusted on first sight, a change approved by a human.

A server that changes what a tool does after the agent's operators looked at it (a
"rug pull": `read_file` redefined to send ~/.ssh elsewhere, a description carrying
instructions for the model) must not take effect unnoticed. The first time a target's
server lists a tool, its definition's fingerprint (`interpret.mcp.fingerprint`: the
whole definition — name, title, description, input and output schemas, annotations,
`_meta`, icons, whatever else it declares) is pinned: a rug pull hides anywhere a
client or its model reads. A later listing that declares another definition asks the
target's `pin_approvers` to approve it (an approval like a held request's: the same
store, API, page, CLI and webhook, which is the alert); until it is approved the
tool's pin is `changed`, and the pack hides it and refuses calls to it. Approved, the
new definition is pinned in its place.

The pins live in the store beside approvals, so every worker and replica sees one set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson

from extproc.approvals.hold import Holds
from extproc.approvals.model import Approval, ApprovalError, now
from extproc.codecs.refusal import Unavailable
from extproc.interpret.mcp import UNKNOWN, Declared, Pin, fingerprint
from extproc.recording import Evidence
from extproc.store import StoreError

log = logging.getLogger("tollgate.mcp")

_COLUMNS = "tool, pinned, pinned_definition, seen, seen_definition, approval_id"
RULE = "mcp.tool_definition_changed"


class StoredPins:
    """The pins in the store. A store that cannot answer refuses what needs them (503
    `tool_pins_unavailable`): what cannot be checked against its pin does not pass."""

    def __init__(self, holds: Holds) -> None:
        self._holds = holds
        self._store = holds.store.store

    async def declared(self, target: str, name: str) -> tuple[Declared | None, Pin]:
        with _unavailable():
            return await self._declared(target, name)

    async def listed(self, target: str, approvers: tuple[str, ...],
                     tools: list[tuple[str, Declared]], asker: Evidence) -> dict[str, Pin]:
        with _unavailable():
            return await self._listed(target, approvers, tools, asker)

    async def _declared(self, target: str, name: str) -> tuple[Declared | None, Pin]:
        rows = await self._store.execute(
            f"SELECT {_COLUMNS} FROM mcp_tools WHERE target = ? AND tool = ?", (target, name))
        if not rows:
            return None, UNKNOWN
        _, pinned, pinned_definition, seen, seen_definition, approval_id = rows[0]
        if seen == pinned:
            return orjson.loads(pinned_definition), _pin("pinned", seen, pinned)
        if await self._approved(approval_id):
            await self._repin(target, name, seen, seen_definition, approval_id)
            return orjson.loads(seen_definition), _pin("pinned", seen, seen)
        return orjson.loads(seen_definition), _pin("changed", seen, pinned)

    async def _listed(self, target: str, approvers: tuple[str, ...],
                      tools: list[tuple[str, Declared]], asker: Evidence) -> dict[str, Pin]:
        rows = {row[0]: row for row in await self._store.execute(
            f"SELECT {_COLUMNS} FROM mcp_tools WHERE target = ?", (target,))}
        found: dict[str, Pin] = {}
        for name, declared in tools:
            fp = fingerprint(name, declared)
            row = rows.get(name)
            if row is None:
                found[name] = await self._first(target, name, fp, declared, asker)
                continue
            _, pinned, pinned_definition, seen, _, approval_id = row
            if fp == pinned:
                if seen != pinned:  # the server went back to the pinned definition
                    await self._back(target, name, fp, declared, seen)
                found[name] = _pin("pinned", fp, pinned)
            elif fp == seen and await self._approved(approval_id):
                await self._repin(target, name, fp, _text(declared), approval_id)
                found[name] = _pin("pinned", fp, fp)
            else:
                if fp != seen or not await self._asked(approval_id):
                    await self._ask(target, name, approvers, declared, fp, seen,
                                    orjson.loads(pinned_definition), asker)
                found[name] = _pin("changed", fp, pinned)
        return found

    async def _first(self, target: str, name: str, fp: str, declared: Declared,
                     asker: Evidence) -> Pin:
        """Trust on first sight; of two workers pinning at once, the first row stands."""
        at, text = now(), _text(declared)
        await self._store.execute(
            "INSERT INTO mcp_tools (target, tool, pinned, pinned_definition, pinned_us, "
            "pinned_by, seen, seen_definition, seen_us, approval_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (target, tool) DO NOTHING",
            (target, name, fp, text, at, f"first seen, trace {asker.trace_id}", fp, text, at))
        rows = await self._store.execute(
            "SELECT pinned FROM mcp_tools WHERE target = ? AND tool = ?", (target, name))
        pinned = rows[0][0]
        return _pin("pinned" if pinned == fp else "changed", fp, pinned)

    async def _ask(self, target: str, name: str, approvers: tuple[str, ...],
                   declared: Declared, fp: str, seen: str, pinned: Any,
                   asker: Evidence) -> None:
        """A new definition: one approval asked for it, by whichever worker saw it first
        (the row's `seen` moves in one statement, which only one can win)."""
        claimed = await self._store.execute(
            "UPDATE mcp_tools SET seen = ?, seen_definition = ?, seen_us = ?, approval_id = NULL "
            "WHERE target = ? AND tool = ? AND seen = ? RETURNING tool",
            (fp, _text(declared), now(), target, name, seen))
        if not claimed and fp == seen:
            claimed = [(name,)]  # an earlier approval of this definition expired or was denied
        if not claimed:
            return
        reason = (f"MCP tool {name} of target {target} changed its definition since it was "
                  "pinned; calls to it are refused until the new one is approved")
        log.warning("%s (trace %s)", reason, asker.trace_id)
        approval = await self._holds.ask_about(
            f"mcp-tool:{target}:{name}:{fp}", asker, approvers, (RULE,), (reason,),
            f"approve the new definition of MCP tool {name} ({target})",
            {"method": "tools/list", "path": f"mcp tool {name}", "query": {},
             "body": {"tool": name, "pinned": pinned, "declared": declared}})
        await self._store.execute(
            "UPDATE mcp_tools SET approval_id = ? WHERE target = ? AND tool = ? AND seen = ?",
            (approval.id, target, name, fp))

    async def _back(self, target: str, name: str, fp: str, declared: Declared,
                    was: str) -> None:
        """The server declares the pinned definition again: nothing waits for approval."""
        await self._store.execute(
            "UPDATE mcp_tools SET seen = ?, seen_definition = ?, seen_us = ?, "
            "approval_id = NULL WHERE target = ? AND tool = ? AND seen = ?",
            (fp, _text(declared), now(), target, name, was))

    async def _repin(self, target: str, name: str, fp: str, definition: str,
                     approval_id: str) -> None:
        await self._store.execute(
            "UPDATE mcp_tools SET pinned = ?, pinned_definition = ?, pinned_us = ?, "
            "pinned_by = ? WHERE target = ? AND tool = ? AND seen = ?",
            (fp, definition, now(), f"approval {approval_id}", target, name, fp))
        log.info("MCP tool %s of target %s: the new definition is pinned (approval %s)",
                 name, target, approval_id)

    async def _approved(self, approval_id: str | None) -> bool:
        approval = await self._approval(approval_id)
        return approval is not None and approval.state() in ("approved", "used")

    async def _asked(self, approval_id: str | None) -> bool:
        """Whether an approval of the definition seen was asked and still stands: an
        expired one is asked again, a denied one is not (approvers said no; the tool
        stays refused until the server changes it again)."""
        approval = await self._approval(approval_id)
        return approval is not None and approval.state() != "expired"

    async def _approval(self, approval_id: str | None) -> Approval | None:
        if approval_id is None:
            return None
        try:
            return await self._holds.store.get(approval_id)
        except ApprovalError:  # pruned with old approvals: asked again
            return None


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        raise Unavailable(503, "tool_pins_unavailable", "the MCP tool definitions pinned for "
                       f"this target cannot be read, so nothing is checked against them: "
                       f"{exc}") from None


def _pin(status: Any, fp: str | None, pinned: str | None) -> Pin:
    return {"status": status, "fingerprint": fp, "pinned": pinned}


def _text(declared: Declared) -> str:
    return orjson.dumps(declared).decode()

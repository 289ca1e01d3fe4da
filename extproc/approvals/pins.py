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

A rug pull may rename as well: drop a trusted tool and list its redefinition under a new
name, or move a definition the pack treats strictly (a destructive one, one kept to some
groups, one whose approval was refused) under a name it trusts. So only the target's
first listing is trusted on sight (its pages asked for with a cursor too, for a minute
after it: a server may page its tools); a tool listed later under a name never seen
is `new`, or `renamed` when this target declared its definition (all of it but the
name) under another name before, and waits for an approval as a changed one does. Any
unapproved pin names that other name (`renamed_from`): a `changed` tool may have taken
another tool's definition (a swap).

The pins live in the store beside approvals, so every worker and replica sees one set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

from extproc.approvals.hold import Holds
from extproc.approvals.model import Approval, ApprovalError, now
from extproc.codecs.refusal import Unavailable
from extproc.interpret.mcp import UNKNOWN, Declared, Pin, definition_fingerprint, fingerprint
from extproc.recording import Evidence
from extproc.store import StoreError

log = logging.getLogger("tollgate.mcp")

_COLUMNS = ("tool, pinned, pinned_definition, seen, seen_definition, approval_id, pinned_us, "
            "pinned_by")
# The approval's rule, by the pin's status when it was asked.
RULES = {"changed": "mcp.tool_definition_changed", "new": "mcp.tool_definition_new",
         "renamed": "mcp.tool_definition_renamed"}
RULE = RULES["changed"]
# `pinned` of a tool first listed after the target's first listing: nothing is trusted
# of it until an approval pins what it declares.
NOTHING = ""
_FIRST_SEEN = "first seen"  # how `pinned_by` begins for what the first listing pinned
_FIRST_LISTING_US = 60_000_000  # how long a first listing's further pages are trusted


class _Row(NamedTuple):
    tool: str
    pinned: str
    pinned_definition: str  # JSON; `null` where nothing is pinned
    seen: str
    seen_definition: str
    approval_id: str | None
    pinned_us: int
    pinned_by: str


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
                     tools: list[tuple[str, Declared]], asker: Evidence,
                     continued: bool = False) -> dict[str, Pin]:
        with _unavailable():
            return await self._listed(target, approvers, tools, asker, continued)

    async def _rows(self, target: str, name: str | None = None) -> dict[str, _Row]:
        rows = await self._store.execute(
            f"SELECT {_COLUMNS} FROM mcp_tools WHERE target = ?"
            + ("" if name is None else " AND tool = ?"),
            (target,) if name is None else (target, name))
        return {row[0]: _Row(*row) for row in rows}

    async def _declared(self, target: str, name: str) -> tuple[Declared | None, Pin]:
        row = (await self._rows(target, name)).get(name)
        if row is None:
            return None, UNKNOWN
        if row.seen == row.pinned:
            return orjson.loads(row.pinned_definition), _pin("pinned", row.seen, row.pinned)
        declared = orjson.loads(row.seen_definition)
        if await self._approved(row.approval_id):
            await self._repin(target, name, row.seen, row.seen_definition, row.approval_id)
            return declared, _pin("pinned", row.seen, row.seen)
        origin = _Origins(await self._rows(target)).of(name, declared)
        return declared, _unapproved(row.pinned, row.seen, origin)

    async def _listed(self, target: str, approvers: tuple[str, ...],
                      tools: list[tuple[str, Declared]], asker: Evidence,
                      continued: bool) -> dict[str, Pin]:
        rows = await self._rows(target)
        first, origins = _first_listing(rows, continued), _Origins(rows)
        found: dict[str, Pin] = {}
        for name, declared in tools:
            fp = fingerprint(name, declared)
            row = rows.get(name)
            if row is None and first:
                found[name] = await self._first(target, name, fp, declared, asker)
            elif row is None:
                found[name] = await self._arrived(target, name, approvers, declared, fp,
                                                  origins.of(name, declared), asker)
            elif fp == row.pinned:
                if row.seen != row.pinned:  # the server went back to the pinned definition
                    await self._back(target, name, fp, declared, row.seen)
                found[name] = _pin("pinned", fp, row.pinned)
            elif fp == row.seen and await self._approved(row.approval_id):
                await self._repin(target, name, fp, _text(declared), row.approval_id)
                found[name] = _pin("pinned", fp, fp)
            else:
                pin = found[name] = _unapproved(row.pinned, fp, origins.of(name, declared))
                if fp != row.seen or not await self._asked(row.approval_id):
                    await self._ask(target, approvers, declared, row, pin, asker)
        return found

    async def _first(self, target: str, name: str, fp: str, declared: Declared,
                     asker: Evidence) -> Pin:
        """Trust on first sight; of two workers pinning at once, the first row stands."""
        at, text = now(), _text(declared)
        await self._store.execute(
            "INSERT INTO mcp_tools (target, tool, pinned, pinned_definition, pinned_us, "
            "pinned_by, seen, seen_definition, seen_us, approval_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (target, tool) DO NOTHING",
            (target, name, fp, text, at, f"{_FIRST_SEEN}, trace {asker.trace_id}", fp, text,
             at))
        rows = await self._store.execute(
            "SELECT pinned FROM mcp_tools WHERE target = ? AND tool = ?", (target, name))
        pinned = rows[0][0]
        return _pin("pinned", fp, pinned) if pinned == fp else _unapproved(pinned, fp, None)

    async def _arrived(self, target: str, name: str, approvers: tuple[str, ...],
                       declared: Declared, fp: str, origin: str | None,
                       asker: Evidence) -> Pin:
        """A tool first listed after the target's first listing: nothing of it pinned, an
        approval asked by whichever worker writes its row (the others see it `new`)."""
        at, text = now(), _text(declared)
        written = await self._store.execute(
            "INSERT INTO mcp_tools (target, tool, pinned, pinned_definition, pinned_us, "
            "pinned_by, seen, seen_definition, seen_us, approval_id) "
            "VALUES (?, ?, ?, 'null', ?, ?, ?, ?, ?, NULL) "
            "ON CONFLICT (target, tool) DO NOTHING RETURNING tool",
            (target, name, NOTHING, at, f"nothing: listed later, trace {asker.trace_id}", fp,
             text, at))
        pin = _unapproved(NOTHING, fp, origin)
        if written:
            await self._request(target, name, approvers, declared, None, pin, asker)
        return pin

    async def _ask(self, target: str, approvers: tuple[str, ...], declared: Declared,
                   row: _Row, pin: Pin, asker: Evidence) -> None:
        """A new definition: one approval asked for it, by whichever worker saw it first
        (the row's `seen` moves in one statement, which only one can win)."""
        fp = pin["fingerprint"]
        claimed = await self._store.execute(
            "UPDATE mcp_tools SET seen = ?, seen_definition = ?, seen_us = ?, approval_id = NULL "
            "WHERE target = ? AND tool = ? AND seen = ? RETURNING tool",
            (fp, _text(declared), now(), target, row.tool, row.seen))
        if not claimed and fp == row.seen:
            claimed = [(row.tool,)]  # an earlier approval of this definition expired or was denied
        if claimed:
            await self._request(target, row.tool, approvers, declared,
                                orjson.loads(row.pinned_definition), pin, asker)

    async def _request(self, target: str, name: str, approvers: tuple[str, ...],
                       declared: Declared, pinned: Any, pin: Pin, asker: Evidence) -> None:
        """The approval of what `name` declares now, its id kept on the row that saw it."""
        fp, status, origin = pin["fingerprint"], pin["status"], pin["renamed_from"]
        what = {"changed": "changed its definition since it was pinned"
                           + (f", to what tool {origin} declared" if origin else ""),
                "new": "was first listed after the target's tools were pinned",
                "renamed": f"declares what tool {origin} declared (renamed, or moved under "
                           "another name)"}[status]
        reason = (f"MCP tool {name} of target {target} {what}; calls to it are refused until "
                  "it is approved")
        log.warning("%s (trace %s)", reason, asker.trace_id)
        approval = await self._holds.ask_about(
            f"mcp-tool:{target}:{name}:{fp}", asker, approvers, (RULES[status],), (reason,),
            f"approve the {'new ' if status == 'changed' else ''}definition of MCP tool "
            f"{name} ({target})",
            {"method": "tools/list", "path": f"mcp tool {name}", "query": {},
             "body": {"tool": name, "pinned": pinned, "declared": declared,
                      "renamed_from": origin}})
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
                     approval_id: str | None) -> None:
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


class _Origins:
    """Which names a target declared each definition under (name aside), pinned or only
    seen (a refused one too), read from its rows once asked."""

    def __init__(self, rows: dict[str, _Row]) -> None:
        self._rows = rows
        self._names: dict[str, list[str]] | None = None

    def of(self, name: str, declared: Declared) -> str | None:
        """The first other name (in order) `declared` was declared under; None: none."""
        if self._names is None:
            self._names = {}
            for tool in sorted(self._rows):
                row = self._rows[tool]
                for text in {row.pinned_definition, row.seen_definition} - {"null"}:
                    self._names.setdefault(
                        definition_fingerprint(orjson.loads(text)), []).append(tool)
        others = self._names.get(definition_fingerprint(declared), [])
        return next((other for other in others if other != name), None)


def _first_listing(rows: dict[str, _Row], continued: bool) -> bool:
    """Whether a listing is (part of) the target's first, whose tools are trusted on
    sight: nothing pinned yet, or a page asked for with a cursor soon after it."""
    if not rows:
        return True
    firsts = [row.pinned_us for row in rows.values() if row.pinned_by.startswith(_FIRST_SEEN)]
    return continued and bool(firsts) and now() - min(firsts) < _FIRST_LISTING_US


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        raise Unavailable(503, "tool_pins_unavailable", "the MCP tool definitions pinned for "
                       f"this target cannot be read, so nothing is checked against them: "
                       f"{exc}") from None


def _pin(status: Any, fp: str | None, pinned: str | None,
         origin: str | None = None) -> Pin:
    return {"status": status, "fingerprint": fp, "pinned": pinned, "renamed_from": origin}


def _unapproved(pinned: str, fp: str, origin: str | None) -> Pin:
    """The pin of a definition not approved: `changed` from what is pinned, or, nothing
    pinned (a tool listed after the first listing), `renamed` or `new`."""
    if pinned != NOTHING:
        return _pin("changed", fp, pinned, origin)
    return _pin("renamed" if origin else "new", fp, None, origin)


def _text(declared: Declared) -> str:
    return orjson.dumps(declared).decode()

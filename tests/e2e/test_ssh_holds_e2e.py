"""Holds on the SSH front tell the truth when their client leaves.

Through a real Envoy-less SSH front (tollgate's own, as the quickstart runs it) to a real
sshd: an agent's held line or command whose connection drops while it waits stops
waiting at once. The approval shows nobody waiting (its lease cleared, not left to
lapse) and is withdrawn (its client never knew it was held: nobody may grant it), the
exchange's record says its client left, the approvals API and CLI say so, and the same
line typed in another session is held anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import api, pending_where
from tests.e2e.test_ssh_e2e import OPS, connect, read_until, web
from tests.support.gateway import Gateway, module_gateway
from tests.support.sshd import Sshd

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "ssh-holds", targets=[web(host)], ssh={},
                        settings={"approvals": {"max_hold_seconds": 60}}) as running:
        yield running


def _pending(gw: Gateway, command: str, other_than: str | None = None) -> dict[str, Any]:
    """The pending approval of `command` (not `other_than`), once it exists."""
    return pending_where(
        gw, lambda a: a["id"] != other_than
        and (a["request"]["body"] or {}).get("command") == command, OPS,
        f"a pending approval of {command!r}")


def _shown(gw: Gateway, approval_id: str) -> dict[str, Any]:
    status, answer = api(gw, "GET", f"/approvals/{approval_id}", OPS)
    assert status == 200, answer
    return answer


def _client_left(record: dict[str, Any]) -> bool:
    """The record of an exchange whose client left while it was held: refused as left
    (the hold saw its client go), or ended held (its session ended under it first)."""
    outcome = record["outcome"]
    return "client_left" in (outcome["refusal"], outcome["detail"])


def _left(gw: Gateway, approval: dict[str, Any]) -> dict[str, Any]:
    """Once its client left: the approval, unwaited, answered as left, as the API says."""
    stack.wait_until(lambda: bool((_shown(gw, approval["id"])["wait"]["answered"] or {})
                                  .get("client_left")), 10, "the hold's end as left")
    return _shown(gw, approval["id"])


async def test_a_shell_line_held_when_its_client_leaves_ends_and_withdraws_its_approval(
        gw: Gateway, host: Sshd) -> None:
    marker = host.home / "shell-grant.txt"
    line = f"sudo -n true 2>/dev/null; echo granted > {marker}"
    conn = await connect(gw)
    process = await conn.create_process(term_type="xterm", encoding=None)
    process.stdin.write(f"{line}\r".encode())
    await read_until(process.stdout, b"waiting up to")
    approval = await asyncio.to_thread(_pending, gw, line)
    assert (await asyncio.to_thread(_shown, gw, approval["id"]))["wait"]["waiting"] is True
    conn.abort()  # the agent's process is killed: no channel close, no word
    shown = await asyncio.to_thread(_left, gw, approval)
    assert shown["wait"]["waiting"] is False and shown["status"] == "abandoned"
    (record,) = [r for r in gw.records("exchange") if r["trace_id"] == approval["trace_id"]]
    assert _client_left(record), record["outcome"]
    # Its client never knew it was held: withdrawn, nobody may grant it.
    status, refused = await asyncio.to_thread(
        api, gw, "POST", f"/approvals/{approval['id']}/approve", OPS, {"reason": "ok"})
    assert (status, refused["error"]) == (409, "not_pending"), refused
    # Another shell typing the same line is held anew.
    async with connect(gw) as other:
        again = await other.create_process(term_type="xterm", encoding=None)
        again.stdin.write(f"{line}\r".encode())
        await read_until(again.stdout, b"waiting up to")
        fresh = await asyncio.to_thread(_pending, gw, line, approval["id"])
        assert fresh["id"] != approval["id"]
        status, _ = await asyncio.to_thread(
            api, gw, "POST", f"/approvals/{fresh['id']}/deny", OPS, {"reason": "no"})
        assert status == 200
        await read_until(again.stdout, b"[trace ")
        again.stdin.write(b"exit 0\r")
        await again.wait_closed()
    assert not marker.exists()
    assert _shown(gw, approval["id"])["status"] == "abandoned"


async def test_a_command_held_when_its_client_leaves_is_recorded_as_left(
        gw: Gateway, host: Sshd) -> None:
    command = f"sudo -n true 2>/dev/null; echo left > {host.home / 'left.txt'}"
    conn = await connect(gw)
    process = await conn.create_process(command, encoding=None)
    await read_until(process.stderr, b"waiting up to")
    approval = await asyncio.to_thread(_pending, gw, command)
    conn.abort()
    shown = await asyncio.to_thread(_left, gw, approval)
    assert shown["wait"]["waiting"] is False and shown["status"] == "abandoned"
    (record,) = [r for r in gw.records("exchange") if r["trace_id"] == approval["trace_id"]]
    assert _client_left(record), record["outcome"]

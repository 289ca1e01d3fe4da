"""What an exchange counts against the budgets (activity/budgets.py): which budgets and
keys it falls under, what it asks to reserve before its decision, and what it used once
it ends.

A call is one call. An LLM call also asks for tokens: its prompt's UTF-8 bytes over
BYTES_PER_TOKEN, plus the output its request allows (`max_tokens`,
`max_completion_tokens`, `max_output_tokens`; else `reserve_tokens`) times the answers it
asks for (`n`), and their cost at the request's model's price.

It is settled at what it used, which tollgate counts for itself rather than take the
model's word: the output is the bytes of what the answer relayed as written by the model
(its texts, tool calls and reasoning, not its metadata: `interpret.output_bytes`) over
BYTES_PER_TOKEN, the input the prompt's count, and each settles at the larger of that
count and what the model reported (`usage`). A model (or a proxy in front of one) that
reports 1 token for pages of output, or nothing, spends the budget all the same. Where
the answer reported no usage the reservation stands if it is larger. An exchange that
never went upstream used nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extproc.activity.budgets import Amounts, BudgetBook, Entry
from extproc.codecs import jsonenc
from extproc.store import StoreError

if TYPE_CHECKING:
    from extproc.config import Budgets
    from extproc.exchange.state import Exchange

log = logging.getLogger("tollgate.budgets")

# The most groups of one identity a `per: group` budget counts it under (sorted first).
GROUPS_MOST = 8
# A bound on the bytes of one token, low so that a count errs towards more tokens: the
# BPE vocabularies of OpenAI's models (cl100k, o200k) average about four bytes a token in
# English prose and fewer in code, numbers and other scripts (a CJK character, three
# bytes, is about one token); three keeps within their spread, and needs no model's
# vocabulary, which no package here ships for offline use.
BYTES_PER_TOKEN = 3
# The most answers one request may ask for (`n`) that the reservation counts: the
# upstream refuses more (OpenAI's limit is 128).
_MOST_ANSWERS = 128
_OUTPUT_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_USAGE = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


@dataclass(frozen=True, slots=True)
class Reserved:
    """An exchange's reservation: input.budget (JSON text), what it asked for, and its
    prompt's tokens as counted then (what its settle counts the input at)."""

    input_json: str
    asked: Amounts
    prompt_tokens: int = 0


class Budgeting:
    """The budgets of one process: reserved before each request's decision, settled as
    each exchange ends (off the request path, never lost while the process runs)."""

    def __init__(self, settings: Budgets, book: BudgetBook) -> None:
        self._settings, self._book = settings, book
        self._settling: set[asyncio.Task[None]] = set()

    async def reserve(self, exchange: Exchange) -> None:
        """The exchange's reservation, as `exchange.budget` (left None where no budget
        counts it); once per exchange, whatever number of decisions it takes."""
        if exchange.budget is not None or not self._settings.limits:
            return
        entries = self._entries(exchange)
        if not entries:
            return
        asked, prompt = self._asked(exchange)
        found = await self._book.reserve(exchange.trace_id, entries, asked)
        exchange.budget = Reserved(jsonenc.dumps(found), asked, prompt)
        exchange.outcome["tollgate.budget.status"] = found["status"]
        if found["status"] != "reserved":
            exchange.outcome["tollgate.budget.names"] = tuple(
                b["name"] for b in found["budgets"] if b["exceeded"] or b["used"] is None)

    def settle_soon(self, exchange: Exchange) -> None:
        """The exchange ended: its reservation corrected to what it used."""
        reserved = exchange.budget
        if reserved is None or exchange.outcome.get("tollgate.budget.status") != "reserved":
            return
        used = self._used(exchange, reserved)
        task = asyncio.get_running_loop().create_task(self._settle(exchange.trace_id, used))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, exchange_id: str, used: Amounts) -> None:
        for delay in (0.0, 0.2, 1.0, 5.0, 30.0):  # through a blip; then the estimate stands
            await asyncio.sleep(delay)
            try:
                await self._book.settle(exchange_id, used)
                return
            except StoreError as exc:
                log.warning("budgets: settling %s failed (%s)", exchange_id, exc)
        log.error("budgets: %s not settled; its reservation stands", exchange_id)

    async def drain(self) -> None:
        """Wait for the settles under way (a process stopping)."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=5.0)

    def _entries(self, exchange: Exchange) -> list[Entry]:
        target = exchange.target
        if target is None:
            return []
        identity: dict[str, Any] = dict(exchange.identity)
        groups = sorted(g for g in identity.get("groups") or () if isinstance(g, str))
        tool = _tool(exchange)
        entries = []
        for budget in self._settings.limits:
            if budget.targets and target.name not in budget.targets:
                continue
            if budget.tools and tool not in budget.tools:
                continue
            mine = [g for g in groups if not budget.groups or g in budget.groups]
            if budget.groups and not mine:
                continue
            values: dict[str, list[str]] = {"identity": [identity.get("sub") or "anonymous"],
                      "group": mine[:GROUPS_MOST], "target": [target.name],
                      "tool": [tool] if tool else []}
            start = self._book.window_start(budget)
            for combination in itertools.product(*(values[p] for p in budget.per)):
                key = ",".join(f"{p}={v}" for p, v in zip(budget.per, combination,
                                                          strict=True))
                entries.append(Entry(budget, key, start))
        return entries

    def _asked(self, exchange: Exchange) -> tuple[Amounts, int]:
        """What the exchange asks to reserve, and its prompt's tokens (0: no LLM call)."""
        if exchange.target is None or exchange.target.protocol != "llm":
            return Amounts(calls=1), 0
        meaning = exchange.meaning if isinstance(exchange.meaning, dict) else {}
        request: dict[str, Any] = dict(exchange.request or {})
        body = request.get("body")
        body = body if isinstance(body, dict) else {}
        inputs = _prompt_tokens(meaning)
        answers = body.get("n")
        answers = min(answers, _MOST_ANSWERS) if type(answers) is int and answers > 1 else 1
        outputs = answers * next((body[k] for k in _OUTPUT_KEYS
                                  if type(body.get(k)) is int and body[k] > 0),
                                 self._settings.reserve_tokens)
        return (Amounts(1, inputs + outputs, self._cost(meaning.get("model"), inputs, outputs)),
                inputs)

    def _used(self, exchange: Exchange, reserved: Reserved) -> Amounts:
        asked = reserved.asked
        if not exchange.forwarded:
            return Amounts()
        if not asked.tokens:
            return asked
        meaning = exchange.meaning if isinstance(exchange.meaning, dict) else {}
        model = meaning.get("model")
        outcome = exchange.outcome
        inputs = reserved.prompt_tokens
        outputs = math.ceil(exchange.output_bytes / BYTES_PER_TOKEN)
        if any(k in outcome for k in _USAGE):
            told_in, told_out = (int(outcome.get(k) or 0) for k in _USAGE)
            inputs, outputs = max(inputs, told_in), max(outputs, told_out)
        elif asked.tokens >= inputs + outputs:
            return asked  # no word from the model: the reservation stands
        return Amounts(1, inputs + outputs, self._cost(model, inputs, outputs))

    def _cost(self, model: Any, inputs: int, outputs: int) -> int:
        """In millionths of the currency: the prices are per million tokens."""
        price = self._settings.price(model if isinstance(model, str) else None)
        if price is None:
            return 0
        return round(inputs * price.input + outputs * price.output)


def _prompt_tokens(meaning: dict[str, Any]) -> int:
    """The prompt's tokens as tollgate counts them: its messages' UTF-8 bytes over
    BYTES_PER_TOKEN."""
    size = sum(len((m.get("text") or "").encode("utf-8", "surrogatepass"))
               for m in meaning.get("messages") or () if isinstance(m, dict))
    return math.ceil(size / BYTES_PER_TOKEN)


def _tool(exchange: Exchange) -> str | None:
    """The MCP tool an exchange calls (None: it calls none)."""
    meaning = exchange.meaning
    if exchange.target is None or exchange.target.protocol != "mcp" \
            or not isinstance(meaning, dict):
        return None
    tool = meaning.get("tool")
    name = tool.get("name") if isinstance(tool, dict) else None
    return name if isinstance(name, str) and name else None


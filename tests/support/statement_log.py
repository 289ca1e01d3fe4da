"""The record held against the database server's own log of what it ran: every statement
the server ran on a session that came through tollgate is in the record, allowed, as
often as it ran; nothing the record only refused is in the server's log.

Shared by the statement-log differentials (tests/postgres/ and tests/mysql/
test_statement_log_differential.py: generated sessions, one at a time) and the drivers'
suites (tests/drivers/test_driver_suites.py: every session of a suite's run through
tollgate). Where the server's log and the record differ by design, the difference is
read back here, and nowhere else:

- a text the record keeps by size and SHA-256 alone (bytes that are no UTF-8, or more
  than recording.max_body_bytes, cut) is compared by its SHA-256 (of the bytes the
  server logged: a PostgreSQL session's in UTF-8, a MariaDB text's as trimmed below);
- an empty text (psycopg's `execute("")`), of which the record keeps no body;
- the record masks every text it keeps with every detector (extproc/recording/
  record.py): a logged text is compared masked so where the record has no other form
  of it (a text holding what a detector takes for a protected value);
- MariaDB's general log shows a Query without its leading whitespace, nor its trailing
  whitespace and semicolons;
- the PostgreSQL front prepares each named statement under a name of its own
  (`tollgate_s<N>`, which the server logs with each Execute: the text is the client's),
  and names it so in SQL's EXECUTE or DEALLOCATE of it, as it names a statement SQL's
  PREPARE makes alone in its text (the server logs the text renamed: it is attributed to
  the client's text the record holds);
- the fronts' own statements, each marked: the PostgreSQL front's questions to the
  planner before a write (an EXPLAIN only of a statement the record holds), the readings
  that measure a write's effect (PostgreSQL: each followed, in its session, by the write
  it measures, which the record holds as a write it allowed; MySQL:
  tests/support/mysql_shop.effect_statements).

Over a whole run (the drivers' suites) statements are counted across its sessions: the
record names no database connection, to hold each of the server's sessions against one
session of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Container, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from extproc.masking import Masker
from extproc.masking.record_mask import RECORD_MASK
from extproc.postgres import effect as pg_effect
from extproc.postgres import estimate, locks, namespace
from extproc.postgres import lock_waits as pg_lock_waits
from tests.support.gateway import request_text
from tests.support.mysql_shop import effect_statements, set_up

# What the record's statements are compared by where it keeps no text (recorded_as).
DIGEST = "sha256:"
# The records of a statement's text (its other methods: a login, a cancel ...).
_STATEMENTS = frozenset({"QUERY", "PARSE", "EXECUTE", "PREPARE"})
# The characters MariaDB trims off a Query's ends before it logs it (its my_isspace).
WHITESPACE = " \t\n\r\x0b\x0c"
# The record's masking (its strategy redacts: the key, which only hashing uses, is any).
_MASKER = Masker(b"statement-log-comparison")
# What a refusal's or a difference's statement is cut to in a report.
SHOWN = 160
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Difference:
    """A statement the server's log and the record disagree on, and how often each has
    it (the record: as allowed)."""

    statement: str
    logged: int
    recorded: int


@dataclass(frozen=True)
class Comparison:
    """A server log's statements against the record's: `logged` compared, `own` of them
    the front's, attributed to recorded statements."""

    logged: int
    own: int
    unrecorded: tuple[Difference, ...]  # ran more often than the record allows
    refused: tuple[Difference, ...]  # the record only refused it, yet the server ran it

    @property
    def holds(self) -> bool:
        return not self.unrecorded and not self.refused

    def explain(self) -> str:
        """Each difference, a line each: the statement, how often logged and recorded."""
        lines = [f"the server ran what the record does not allow ({len(self.unrecorded)}):"
                 if self.unrecorded else ""]
        lines += [f"  logged {d.logged}, recorded allowed {d.recorded}: {d.statement}"
                  for d in self.unrecorded]
        if self.refused:
            lines.append(f"the record only refused, yet the server ran ({len(self.refused)}):")
            lines += [f"  logged {d.logged}: {d.statement}" for d in self.refused]
        return "\n".join(line for line in lines if line)


def shown(key: Hashable) -> str:
    """A statement's key as a report shows it: (command, text) as `command: text`, the
    text cut to SHOWN characters."""
    command, text = key if isinstance(key, tuple) else ("", key)
    text = str(text)
    cut = repr(text[:SHOWN]) + (f" ... ({len(text)} characters)" if len(text) > SHOWN else "")
    return f"{command}: {cut}" if command else cut


def compare(ran: Counter[K], allowed: Counter[K], refused: Iterable[K], own: int = 0,
            show: Callable[[K], str] = shown) -> Comparison:
    """What the server ran (`ran`, the front's own statements taken out: `own`) against
    what the record allowed and refused, statement by statement."""
    unrecorded = tuple(Difference(show(k), ran[k], allowed[k])
                       for k, _ in sorted((ran - allowed).items(), key=lambda kv: -kv[1]))
    ran_refused = tuple(Difference(show(k), ran[k], 0)
                        for k in set(refused) if ran[k] and not allowed[k])
    return Comparison(sum(ran.values()) + own, own, unrecorded, ran_refused)


def recorded_as(record: dict[str, Any]) -> str | None:
    """What a record's statement is compared by: its text, or DIGEST and its SHA-256
    where the record keeps it by size and hash alone; "" for an empty one, whose record
    keeps no body (None: it carries none)."""
    body = record["request"]["body"]
    if body is None:
        return "" if record["request"]["method"] in _STATEMENTS else None
    if "value" in body and not body.get("truncated"):
        return request_text(record)
    return DIGEST + str(body["sha256"]) if "sha256" in body else None


def logged_as_recorded(text: str, known: Container[str]) -> str:
    """A logged text's key: itself where `known` has it; else as the record keeps it,
    where `known` has that: DIGEST and the SHA-256 of its bytes (a log read with
    errors="surrogateescape" keeps those that are no UTF-8), or masked as the record
    masks every text it keeps (extproc/recording/record.py)."""
    if text in known:
        return text
    digest = DIGEST + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    if digest in known:
        return digest
    masked = _MASKER.mask_text(text, RECORD_MASK)[0]
    return masked if masked in known else text


def _allowed(record: dict[str, Any]) -> bool:
    return bool(record["outcome"]["action"] == "allow")


# -- PostgreSQL (log_statement = all, log_destination = jsonlog) ------------------------


@dataclass(frozen=True)
class PgLogged:
    """A statement a client backend ran, as the server's JSON log has it: its session
    (the backend's session id), the application_name it gave, its text."""

    session: str
    application: str
    text: str


# An Execute's line: `execute <statement>[/<portal>]: text`, `execute fetch from ...`
# when it resumes a portal (the statement's name is the front's own, or <unnamed>).
_EXECUTE = re.compile(r"execute (?:fetch from )?(?:<unnamed>|[^\s/:]+)(?:/[^:]*)?: ")


def pg_logged(log: str) -> list[PgLogged]:
    """The statements a PostgreSQL JSON log (jsonlog) says client backends ran, in its
    order: simple Queries' texts, and each Execute's. Its lines end at newlines only (a
    text may hold U+0085 or U+2028 as they are); one not ended yet is being written."""
    found = []
    for line in log.split("\n")[:-1]:
        entry = json.loads(line)
        if entry.get("backend_type") != "client backend" or \
                entry.get("error_severity") != "LOG":
            continue
        message = str(entry.get("message", ""))
        execute = _EXECUTE.match(message)
        if message.startswith("statement: "):
            text = message.removeprefix("statement: ")
        elif execute:
            text = message[execute.end():]
        else:
            continue
        found.append(PgLogged(str(entry.get("session_id")),
                              str(entry.get("application_name") or ""), text))
    return found


_OWNED = re.compile(r'"(' + re.escape(namespace.PREFIX) + r's\d+)"')
_EFFECT_PARTS = frozenset({
    "BEGIN", "COMMIT", "ROLLBACK", f"SAVEPOINT {pg_effect.SAVEPOINT}",
    f"RELEASE SAVEPOINT {pg_effect.SAVEPOINT}", f"ROLLBACK TO SAVEPOINT {pg_effect.SAVEPOINT}",
    pg_effect.BEFORE.removeprefix(pg_effect.MARK), pg_effect.AFTER.removeprefix(pg_effect.MARK)})
_EXPLAIN = "EXPLAIN (FORMAT JSON, VERBOSE) "
# The front's bound on an agent's transaction once it locked rows (postgres/locks.py).
_LOCK_BOUND = re.compile(re.escape(locks.setting(0).removesuffix("0")) + r"\d+")
# The front's question of who waits on its sessions' locks (postgres/lock_waits.py), on a
# connection of the gateway's own: its backend pids alone vary.
_LOCK_WAITS = re.compile(re.escape(pg_lock_waits.QUESTION.split("{}")[0]) + r"[\d, ]+\)")


def _writes(record: dict[str, Any]) -> bool:
    """Whether a record is of a statement that may write (a write, an EXECUTE of what
    SQL's PREPARE made, or one decided again on its measured effect: a read that may run
    the database's code, extproc/postgres/reach.py), its first decision allowing it: the
    front measures such a statement's effect before the policy decides on it."""
    sql = (record.get("meaning") or {}).get("sql") or {}
    decisions = record["decisions"]
    return bool(decisions) and decisions[0]["action"] == "allow" and (
        any("write" in s.get("effects", ()) or s.get("kind") == "execute"
            for s in sql.get("statements") or ())
        or [d.get("phase") for d in decisions].count("request") > 1)


def pg_compare(logged: list[PgLogged], records: list[dict[str, Any]]) -> Comparison:
    """The statements a PostgreSQL server logged (`logged`, in order: the sessions that
    came through tollgate) against `records`: every Query and Execute the record allowed
    (QUERY, EXECUTE), and the texts it only refused."""
    allowed = Counter(key for r in records if r["request"]["method"] in ("QUERY", "EXECUTE")
                      and _allowed(r) and (key := recorded_as(r)) is not None)
    refused = {key for r in records if not _allowed(r) and (key := recorded_as(r)) is not None}
    known = allowed.keys() | refused
    texts = {text for r in records if (text := request_text(r)) is not None}
    written = {recorded_as(r) for r in records if _writes(r)}
    renamings = _renamings(texts)
    ran: Counter[str] = Counter()
    own = 0
    measuring: set[str] = set()  # the sessions whose next statement is a measured write
    for entry in logged:
        text = entry.text
        if text.startswith(pg_effect.MARK):
            parts = text.removeprefix(pg_effect.MARK).split(f"; {pg_effect.MARK}")
            parts = [p for part in parts for p in part.split("; ")]
            if all(p in _EFFECT_PARTS for p in parts):
                own += 1
                if pg_effect.BEFORE.removeprefix(pg_effect.MARK) in parts:
                    measuring.add(entry.session)
                continue
        elif (text.startswith(estimate.MARK) and _estimates(
                text.removeprefix(estimate.MARK), texts, renamings)) or (
                _LOCK_BOUND.fullmatch(text) or _LOCK_WAITS.fullmatch(text)):
            own += 1
            continue
        key = logged_as_recorded(renamings.get(_renamed_key(text), text), known)
        if entry.session in measuring:
            measuring.discard(entry.session)
            if key not in written:
                ran[f"(the front measured the effect of what the record holds as no write "
                    f"it allowed) {text}"] += 1
        ran[key] += 1
    return compare(ran, allowed, refused, own)


def _renamed_key(text: str) -> str:
    """A text with the front's statement name in it (SQL's EXECUTE or DEALLOCATE of a
    statement the protocol or SQL prepared, a lone PREPARE, as the front sends it) with
    that name made one."""
    return _OWNED.sub(f'"{namespace.PREFIX}s0"', text, count=1)


def _renamings(texts: Iterable[str]) -> dict[str, str]:
    """The client's EXECUTE, DEALLOCATE and PREPARE texts the record allowed, by what
    the front sends for each (_renamed_key's form)."""
    found = {}
    for text in texts:
        if text.lstrip().upper().startswith(("EXECUTE", "DEALLOCATE", "PREPARE")):
            renamed = namespace.renamed(text, f"{namespace.PREFIX}s0")
            if renamed is not None:
                found[renamed] = text
    return found


def _estimates(asked: str, texts: set[str], renamings: dict[str, str]) -> bool:
    """Whether a text the estimate's mark opens is the front's question: an EXPLAIN only
    of a statement a record holds (renamed or not: a text's statement, stripped), of the
    front's own statement prepared to plan one with parameters, or of a table's rows to
    count; the rest (its transaction's ends, its catalog readings) by the mark."""
    if not asked.startswith(_EXPLAIN):
        return True
    explained = asked.removeprefix(_EXPLAIN)
    explained = logged_as_recorded(renamings.get(_renamed_key(explained), explained), texts)
    return explained in texts or explained.startswith(
        ("SELECT FROM ", f"EXECUTE {estimate.NAME}")) or any(explained in t for t in texts)


# -- MariaDB (its general log) ----------------------------------------------------------

# The commands MariaDB 10.11's general log names (sql/sql_parse.cc: command_name).
_COMMANDS = (
    "Sleep", "Quit", "Init DB", "Query", "Field List", "Create DB", "Drop DB", "Refresh",
    "Shutdown", "Statistics", "Processlist", "Connect", "Kill", "Debug", "Ping", "Time",
    "Delayed insert", "Change user", "Binlog Dump", "Table Dump", "Connect Out",
    "Register Slave", "Prepare", "Execute", "Long Data", "Close stmt", "Reset stmt",
    "Set option", "Fetch", "Daemon", "Unimpl get tid", "Reset connection", "Bulk_execute",
    "Slave_worker", "Slave_IO", "Slave_SQL")
_ENTRY = re.compile(r"^(?:\d{6}\s+[\d:]+)?\s+(\d+) (" + "|".join(map(re.escape, _COMMANDS))
                    + r")(?:\t(.*))?$")
# Commands whose entry carries no statement: a session's start and end, what a prepared
# statement's id names (its Execute is matched to an allowed statement instead), the
# protocol's own (ping, the session's options and reset: the gateway's login and
# COM_CHANGE_USER set the session up again, which its record says).
NO_STATEMENT = frozenset({
    "Connect", "Quit", "Sleep", "Close stmt", "Reset stmt", "Long Data", "Fetch", "Ping",
    "Statistics", "Set option", "Reset connection", "Change user"})


def entries(log: str) -> list[tuple[int, str, str]]:
    """The general log's entries: (thread id, command, text); a text spanning lines is
    joined back (split at newlines only: a text may hold any other control character).
    A last line not ended yet is being written."""
    found: list[tuple[int, str, str]] = []
    for line in log.split("\n")[:-1]:
        match = _ENTRY.match(line)
        if match:
            found.append((int(match[1]), match[2], match[3] or ""))
        elif found and not line.startswith(("/usr/sbin", "Tcp port", "Time ")):
            thread, command, text = found[-1]
            found[-1] = (thread, command, f"{text}\n{line}")
    return found


def threads_of(log: list[tuple[int, str, str]], user: str) -> set[int]:
    """The threads (connections) whose Connect entry logs in as `user`."""
    return {thread for thread, command, text in log
            if command == "Connect" and text.startswith(f"{user}@")}


_SHOW_COLUMNS = re.compile(r"SHOW COLUMNS FROM `((?:[^`]|``)*)`(?: LIKE '(.*)')?", re.S)
_VALUE = r"(?:NULL|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|'(?:[^'\\]|\\.|'')*')"


def logged_as(method: str, statement: str) -> tuple[str, str]:
    """How the server's general log shows a command the record allowed, by the statement
    the record decided it as (COM_INIT_DB's: `USE db`, COM_FIELD_LIST's: `table
    wildcard`; a Query's without what the server trims off its ends)."""
    if method == "INIT_DB":
        return "Init DB", statement[5:-1].replace("``", "`")
    columns = _SHOW_COLUMNS.fullmatch(statement)
    if method == "FIELD_LIST" and columns:
        wildcard = (columns[2] or "").replace("''", "'").replace("\\\\", "\\")
        return "Field List", f"{columns[1].replace('``', '`')} {wildcard}"
    if statement.startswith(DIGEST):
        return "Query", statement
    return "Query", statement.lstrip(WHITESPACE).rstrip(WHITESPACE + ";")


def executes(template: str, text: str) -> bool:
    """Whether `text` is the prepared statement `template` with its parameters filled in,
    as MariaDB writes an executed statement into its log."""
    pattern = "".join(_VALUE if part == "?" else re.escape(part)
                      for part in re.split(r"(\?)", template))
    return re.fullmatch(pattern, text) is not None


def _logged_database(text: str) -> str:
    """An `Init DB` entry's database: the server logs a refused one by its error."""
    denied = re.fullmatch(r"Access denied for user .* to database '(.*)'", text)
    return denied[1] if denied else text


def allowances(records: list[dict[str, Any]], resets: int = 0,
               prepared: Mapping[str, str] | None = None,
               executed: Mapping[str, str] | None = None
               ) -> tuple[Counter[tuple[str, str]], list[str]]:
    """What records allow the server to log: its entries, each as often as allowed; and
    the statements it may execute, once per execution allowed. What the gateway ran to
    set a session up (its role, its timeouts: the login's record says it) runs again
    after each of the client's `resets` (COM_RESET_CONNECTION). SQL's PREPARE and
    EXECUTE: `prepared` and `executed` name the statement each such text has the server
    prepare, and execute."""
    prepared, executed = prepared or {}, executed or {}
    allowed: Counter[tuple[str, str]] = Counter()
    templates: list[str] = []
    for r in records:
        method, text = r["request"]["method"], recorded_as(r) or ""
        if not _allowed(r):
            continue
        for done in set_up(r):
            allowed[("Query", done)] += 1 + (resets if method == "CONNECT" else 0)
        if method == "QUERY":
            allowed[logged_as(method, text)] += 1
            if text in prepared:
                allowed[("Prepare", prepared[text])] += 1
            if text in executed:
                templates.append(executed[text])
        elif method in ("INIT_DB", "FIELD_LIST"):
            allowed[logged_as(method, text)] += 1
        elif method == "CHANGE_USER":
            # The gateway's COM_INIT_DB after its reset, of the database the client
            # asked for (which the tests' targets open under the same name).
            allowed[("Init DB", str(r["request"]["path"]).strip("/"))] += 1
        elif method == "PREPARE":
            allowed[("Prepare", text)] += 1
        elif method == "EXECUTE":
            templates.append(text)
    return allowed, templates


def my_compare(logged: Iterable[tuple[str, str]], records: list[dict[str, Any]],
               resets: int = 0, prepared: Mapping[str, str] | None = None,
               executed: Mapping[str, str] | None = None) -> Comparison:
    """The entries (command, text) MariaDB's general log has of the threads that came
    through tollgate against `records` (allowances' arguments): every entry that
    carries a statement the records allow, as often as logged; every Execute an
    execution the records allowed; no text the records only refused."""
    logged = [(command, text) for command, text in logged if command not in NO_STATEMENT]
    allowed, templates = allowances(records, resets, prepared, executed)
    refused = {key for r in records if not _allowed(r) and (key := recorded_as(r))}
    known = {text for command, text in allowed if command == "Query"} | {
        logged_as("QUERY", key)[1] for key in refused}
    ran: Counter[tuple[str, str]] = Counter()
    for command, text in logged:
        if command == "Query":
            ran[("Query", logged_as_recorded(text, known))] += 1
        elif command == "Init DB":
            ran[(command, _logged_database(text))] += 1
        elif command != "Execute":
            ran[(command, text)] += 1
    own = effect_statements([t for command, t in ran if command == "Query"], records)
    owned = sum(ran.pop(("Query", text)) for text in own)
    for text in (t for command, t in logged if command == "Execute"):
        match = next((t for t in templates if executes(t, text)), None)
        if match is None:
            ran[("Execute", text)] += 1  # no execution of a statement allowed
        else:
            templates.remove(match)
    refused -= {text for _, text in allowed}
    return compare(ran, allowed, [entry for key in refused for entry in (
        logged_as("QUERY", key), ("Prepare", key))], owned)

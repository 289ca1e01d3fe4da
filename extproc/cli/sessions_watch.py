"""`tollgate sessions watch ID` and `tollgate sessions join ID`: a live session as it
happens (admin/live/watch.py's stream), and, joined, lines typed into it.

Watching prints each exchange as its record is stored (masked as recorded) and, for a
terminal session, its screen as the session's recording is written: the screen on
stdout, tollgate's lines on stderr (on stdout for a database session, which has no
screen). It ends when the session does, saying who ended it and why. `--json`: the
stream's events as they come, one JSON object a line.

Joining watches too, as a peer: each line read from stdin is typed into the session
(with its Enter), where tollgate decides it as it decides the agent's and records who
typed it. The end of stdin ends the join.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

from extproc.cli.admin_client import AdminApi, Refused
from extproc.codecs.inert import json_text, terminal
from extproc.codecs.text import utc

# The longest the stream may stay silent (it beats every second).
_SILENCE_SECONDS = 30.0


def watch(api: AdminApi, args: argparse.Namespace, join: bool = False) -> int:
    """Print the session as it happens until it ends (0), or the API refuses (Refused)."""
    path = f"/sessions/live/{quote(args.id, safe='')}/watch" + ("?join=1" if join else "")
    shown = _Shown(args.json)
    for event in _events(api.stream(path, _SILENCE_SECONDS)):
        if shown.show(event):
            return 0
    return 0


def join(api: AdminApi, args: argparse.Namespace) -> int:
    """Watch as a peer, and type each line of stdin into the session."""
    ended = threading.Event()
    failure: list[Refused] = []

    def watching() -> None:
        try:
            watch(api, args, join=True)
        except Refused as exc:
            failure.append(exc)
        finally:
            ended.set()

    thread = threading.Thread(target=watching, daemon=True)
    thread.start()
    path = f"/sessions/live/{quote(args.id, safe='')}/input"
    for line in sys.stdin:
        if ended.is_set():
            break
        api.call("POST", path, {"keys": line.rstrip("\r\n") + "\r"})
    thread.join()
    if failure:
        raise failure[0]
    return 0


def _events(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


class _Shown:
    """The stream's events as a person reads them (or as JSON lines)."""

    def __init__(self, as_json: bool) -> None:
        self._json = as_json
        self._info: IO[str] = sys.stdout

    def show(self, event: dict[str, Any]) -> bool:
        """Print one event; whether it was the last (the session ended)."""
        kind = event.get("event")
        if self._json:
            print(json_text(json.dumps(event, ensure_ascii=False)), flush=True)
            if kind == "error":
                raise Refused(f"{event['error']}: {event['message']}")
            return kind == "ended"
        if kind == "session":
            session = event["session"]
            if session["front"] == "ssh":
                self._info = sys.stderr  # the screen has stdout
            self._say(f"{event['role']}ing session {session['session_id']}: "
                      f"{session['front']} of {session['identity']} on "
                      f"{session['target'] or '-'}, held by {session['replica']}, since "
                      f"{utc(session['started_us'])}")
            self._attending(event["attendees"])
        elif kind == "record":
            self._say(_record_line(event["record"]))
        elif kind == "screen":
            _screen(event["cast"])
        elif kind == "attendance":
            self._attending(event["attendees"])
        elif kind == "ended":
            self._say(f"tollgate: {event['message']}")
            return True
        elif kind == "error":
            raise Refused(f"{event['error']}: {event['message']}")
        return False

    def _attending(self, attendees: list[dict[str, Any]]) -> None:
        people = ", ".join(f"{a['who']} ({a['role']}{', moderator' if a['moderator'] else ''})"
                           for a in attendees) or "nobody"
        self._say(f"attending: {people}")

    def _say(self, text: str) -> None:
        print(terminal(text), file=self._info, flush=True)


def _record_line(record: dict[str, Any]) -> str:
    """One exchange: when, the decision, what it did (masked as recorded), who typed it;
    any other record in the words the stream gives it."""
    when = utc(record["started_us"])[11:]
    if record.get("said") is not None:  # no decision: someone watching, an end, an alert
        return f"{when}  {record['said']}"
    typed = f"  (typed by {record['typist']})" if record.get("typist") else ""
    detail = f"  [{record['detail']}]" if record.get("detail") else ""
    return (f"{when}  {record['action']:<5}  {record.get('what') or record.get('method')}"
            f"{typed}{detail}  trace {record['trace_id']}")


def _screen(cast: str) -> None:
    """A terminal recording's chunk: its output, as the session's terminal showed it."""
    for line in cast.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, list) and len(event) == 3 and event[1] == "o":
            sys.stdout.write(str(event[2]))
    sys.stdout.flush()

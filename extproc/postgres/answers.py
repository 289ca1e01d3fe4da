"""The database's answers, as the client gets them: a sans-IO machine, the database's
bytes in, the client's bytes out.

`Answers.feed` frames what the database sent and, for each message, does what the head
of `State.pending` (state.py) says: masks a result's rows as its exchange's decision
says, replaces the error a refused message's stand-in drew with tollgate's refusal
(refusals.py), ends each exchange when its last answer has gone by (an error in an
extended-protocol batch ends it at once, and the exchanges the database then skips at
the Sync's ReadyForQuery, as not run), gives the front's own questions (a `Probe`) their
answers and the client none of them, and holds a measured write's answers for its
verdict (measured.py). It reads no socket and awaits nothing: the session's loop
(session.py) reads, feeds and writes; what the answers themselves send upstream (the
bound on a transaction's idling, locks.py) waits in `sent()`.

When the database ends the session (pg_terminate_backend, a shutdown), the FATAL error
it says why in is the client's last answer, as it would be directly: a driver names the
error it raises by it (`closed`). tollgate's own goes only where the database closed
without one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refused
from extproc.postgres import locks
from extproc.postgres import messages as pg
from extproc.postgres.copy_rows import rows_of
from extproc.postgres.refusals import Fatal, refusal_message
from extproc.postgres.results import ResultRefused, error_fields, record_sample
from extproc.postgres.state import (
    CYCLE_ENDS,
    Pending,
    Probe,
    Run,
    State,
    end,
    record_mask,
)

if TYPE_CHECKING:
    from extproc.masking import Masker


class Answers:
    """The database's side of one session, over its `State`."""

    def __init__(self, state: State, max_message: int) -> None:
        self.state = state
        self._framer = _LastWord(pg.BACKEND_KINDS, max_message)
        # The front's own messages the answers send upstream, not sent yet (`sent`).
        self._upstream: list[bytes] = []
        # Statements whose rows in what `feed` returned the flow must keep first.
        self.unkept: list[Run] = []

    def feed(self, data: bytes) -> bytes:
        """What the database sent (any part of its messages): what the client gets for
        it, now (a measured write's answers wait for its verdict)."""
        state = self.state
        out: list[bytes] = []
        rows: list[list[bytes | None]] = []
        for message in self._framer.feed(data):
            head = state.head()
            if head is not None and head.run is not None and head.run.unsettles:
                state.wire.answering(head.run.change, message.kind == b"C")
            if head is not None and head.probe is not None:
                out += self._probed(head.probe, message)
                continue
            # A measured write's answers wait for its verdict.
            sink = out if head is None or head.buffer is None else head.buffer
            if message.kind == b"D" and not state.swallowing:
                rows.append(pg.data_row(message.body))
                continue
            if rows:
                sink += self._rows(rows)
                rows = []
            sink += self._message(message)
        if rows:
            head = state.head()
            (out if head is None or head.buffer is None else head.buffer).extend(
                self._rows(rows))
        return b"".join(out)

    def sent(self) -> bytes:
        """What the answers sent upstream since last asked (the front's own SET LOCAL),
        for the loop to write."""
        out = b"".join(self._upstream)
        self._upstream.clear()
        return out

    def closed(self) -> bytes:
        """The database closed the session. The FATAL error it said why in (a backend
        ended by pg_terminate_backend or a shutdown: 57P01; an idle transaction's
        timeout: 25P03) goes to the client, masked as its errors are, whatever answer it
        came in place of: a client names the error by it (AdminShutdown), and a later
        error of tollgate's would replace it. Only a close without a word gets tollgate's
        own. The exchanges in progress end with it (`State.ended`), and a record of its
        own (END) says how the session ended. What the client gets."""
        state, last_word = self.state, self._framer.last_word
        head = state.head()
        code = None
        if last_word is None:
            state.ended = "the database closed the connection"
            message = pg.error("08006", f"tollgate: {state.ended}", severity="FATAL")
        else:
            message = masked_fields(state.masker, b"E", last_word, head)
            said = pg.fields(message[5:])
            code = said.get("C", "")
            state.ended = (f"the database ended the session: "
                           f"{said.get('V') or said.get('S')} {code}: {said.get('M', '')}")
            if head is not None and head.run is not None:
                head.run.exchange.outcome["error.type"] = code
        act = state.act("END", None)
        act.admit(required=False)
        act.exchange.outcome["tollgate.outcome"] = state.ended
        if code is not None:
            act.exchange.outcome["error.type"] = code
        act.end()
        return message

    # -- one message -------------------------------------------------------------------

    def _probed(self, probe: Probe, message: pg.Message) -> list[bytes]:
        """An answer to the front's own questions: the probe's; a notification or a
        setting's new value is the client's, whenever it comes."""
        state = self.state
        if message.kind in (b"A", b"S"):
            return [self._asynchronous(message)]
        if probe.take(message):
            done = state.pending.popleft()
            if message.kind == b"Z" and probe.partial:
                # Its part of the batch was skipped: the batch's end ends what follows.
                return [self._ready(message)]
            if message.kind == b"Z":
                state.status = pg.ready_for_query(message.body)
                state.locks_end()
                state.batch_status = None
                state.wire.ready(done.cycle, state.status)
        return []

    def _rows(self, rows: list[list[bytes | None]]) -> list[bytes]:
        """DataRows of the result in progress, masked as its exchange's decision says."""
        head = self.state.head()
        run = head.run if head is not None else None
        if run is None:
            return [pg.encode_data_row(r) for r in rows]
        if head is not None and head.buffer is not None and head.refusal is not None:
            return []  # a measured write's rows, refused: it is rolled back
        run.rows += len(rows)
        masker, columns = run.masker, run.columns
        if masker is not None and masker.masks:
            try:
                rows = run.masked(functools.partial(masker.rows, rows))
            except ResultRefused as exc:  # a binary record's field of a type not known
                answer = run.exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
                return self._refuse_midway(head, refusal_message(answer))
        if masker is not None and run.delivering(functools.partial(masker.values, rows)):
            self.unkept.append(run)
        if columns is not None:
            run.kept(functools.partial(record_sample, columns, rows))
        return [pg.encode_data_row(r) for r in rows]

    def _message(self, message: pg.Message) -> list[bytes]:
        kind, head = message.kind, self.state.head()
        if kind in (b"N", b"A", b"S"):
            return [self._asynchronous(message)]
        if kind == b"Z":
            return [self._ready(message)]
        if self.state.swallowing:
            return []
        if kind == b"E":
            return self._error(message, head)
        if head is None:
            raise Fatal("the database answered a message nobody sent")
        if kind in (b"1", b"2", b"3", b"n"):
            return self._done(message, head)
        if kind == b"T":
            return self._row_description(message, head)
        if kind in (b"C", b"I", b"s"):
            return self._complete(message, head)
        return self._copy(message, head)

    def _done(self, message: pg.Message, head: Pending) -> list[bytes]:
        """ParseComplete, BindComplete, CloseComplete, NoData: their message's answer."""
        self.state.pending.popleft()
        if message.kind == b"1" and head.run is not None:
            end(head, None, "prepared")
        return [] if head.own else [message.raw()]

    def _copy(self, message: pg.Message, head: Pending) -> list[bytes]:
        """COPY's answers (and a ParameterDescription, passed as it is)."""
        kind = message.kind
        if kind == b"H":
            return self._copy_out_begins(message, head)
        if kind == b"d" and self.state.copy_out is not None:
            return self._copy_data(message, head)
        if kind == b"c":
            self.state.copy_out = None
        if kind == b"W":
            raise Fatal("COPY BOTH (replication) is not relayed")
        return [message.raw()]

    def _row_description(self, message: pg.Message, head: Pending) -> list[bytes]:
        state = self.state
        columns = pg.row_description(message.body)
        if head.kind == b"D":
            state.pending.popleft()
            if head.statement is not None:
                head.statement.columns = columns
            if head.portal is not None:
                head.portal.columns = columns
            if head.own:
                # The Execute it was asked for (a measured one's readings may be between).
                following = next((p for p in state.pending if p.probe is None), None)
                run = following.run if following is not None else None
                if run is not None:
                    refused = state.result_masker(run, columns)
                    if refused is not None:
                        return self._refuse_midway(following, refused)
                return []
            return [message.raw()]
        run = head.run
        if run is not None:  # a simple Query's next result
            refused = state.result_masker(run, columns)
            if refused is not None:
                return self._refuse_midway(head, refused)
        return [message.raw()]

    def _refuse_midway(self, head: Pending | None, refusal: bytes) -> list[bytes]:
        """A result tollgate cannot mask, its statement already running: the client gets
        the refusal, and nothing more of the database's answers until its Ready. A
        measured write's answers wait for its verdict: the refusal is its verdict."""
        if head is not None and head.buffer is not None:
            head.refusal = refusal
            if head.run is not None:
                head.run.error = "refused"
            return []
        self.state.swallowing = True
        if head is not None and head.run is not None:
            head.run.error = "refused"
        return [refusal]

    def _complete(self, message: pg.Message, head: Pending) -> list[bytes]:
        run = head.run
        if run is not None:
            run.commands.append(pg.command_complete(message.body) if message.kind == b"C"
                                else "EMPTY" if message.kind == b"I" else "SUSPENDED")
            if head.kind == b"E":
                self.state.pending.popleft()
                if head.buffer is None:  # a measured write's ends with its verdict
                    end(head, None, run.commands[-1])
        elif head.kind == b"E":
            self.state.pending.popleft()
        self.state.copy_out = None
        return [message.raw()]

    def _error(self, message: pg.Message, head: Pending | None) -> list[bytes]:
        state = self.state
        fields = mask_fields(state.masker, pg.fields(message.body), head)
        out = pg.encode_fields(b"E", fields)
        if head is not None and head.refusal is not None:
            out = head.refusal  # the stand-in's error: tollgate's refusal in its place
        problem = "refused" if head is not None and head.refusal is not None else (
            f"refused by the database (42501): {fields.get('M', '')}"
            if fields.get("C") == "42501" else
            f"error {fields.get('C', '')}: {fields.get('M', '')}")
        if head is not None and head.run is not None and head.refusal is None and fields.get("C"):
            # The database conventions' error.type: the SQLSTATE the database answered.
            head.run.exchange.outcome["error.type"] = fields["C"]
        if head is not None and head.kind not in CYCLE_ENDS:
            # The extended protocol: the database skips to the Sync; so do the exchanges.
            state.batch_failed = True
            state.pending.popleft()
            state.names.forget(head)
            end(head, problem)
        elif head is not None:
            state.names.forget(head)  # a Query's cursors, should it have declared any
            if head.run is not None:
                head.run.error = problem
        state.copy_out = None
        return [out]

    def _ready(self, message: pg.Message) -> bytes:
        """ReadyForQuery: the cycle in progress ends, every exchange in it with it."""
        state = self.state
        state.status = pg.ready_for_query(message.body)
        state.locks_end()
        state.batch_failed = False
        state.swallowing = False
        state.copy_out = None
        while state.pending:
            pending = state.pending.popleft()
            if pending.cycle:
                state.wire.ready(pending.cycle, state.status)
            if pending.probe is not None:
                # The front's own messages, after messages of the batch the database
                # skipped: a part of it skipped too; its end, the front's own Sync.
                pending.probe.take(message)
                if pending.probe.partial:
                    continue
                state.batch_status = None
                return b""
            if pending.measured is not None:
                # The verdict ends its exchange, and gives the client its Ready.
                pending.measured.set_result(None)
                return b""
            if pending.kind in CYCLE_ENDS:
                if state.status == b"I":
                    # A failed transaction's portals last until its ROLLBACK: the
                    # database answers their use with its own error (25P02).
                    state.names.end_portals(pending.cycle)
                end(pending, None, "; ".join(pending.run.commands) if pending.run
                    else None)
                self._bound_after()
                break
            state.names.forget(pending)
            end(pending, "not run: an earlier message of its batch failed")
        return message.raw()

    def _bound_after(self) -> None:
        """The client's cycle ended in a transaction a statement of which may have locked
        rows and that is not bounded yet (it began with them: `BEGIN; SELECT ... FOR
        UPDATE`): the front's SET LOCAL now, answered to it alone, after whatever the
        client sent meanwhile; it re-arms the server's idle timer."""
        state = self.state
        if state.locked and not state.bounded and state.status == b"T" \
                and not state.cancels.sending:  # else at the next cycle's end
            state.bounded = True
            state.pending.append(Pending(b"Q", probe=Probe(1)))
            self._upstream.append(pg.encode_query(locks.setting(state.lock_idle_ms or 0)))

    def _asynchronous(self, message: pg.Message) -> bytes:
        """A notice, a notification or a parameter's new value: they come at any time;
        notices and notifications carry text from the database, masked."""
        state = self.state
        if message.kind == b"N":
            return masked_fields(state.masker, b"N", pg.fields(message.body), state.head())
        if message.kind == b"A":
            note = pg.notification(message.body)
            masked_payload, _ = state.masker.mask_json(note.payload,
                                                       record_mask(state.head()))
            return pg.encode_notification(note._replace(payload=str(masked_payload)))
        name, value = pg.parameter_status(message.body)
        problem = state.wire.report(value) if name.lower() == "client_encoding" else None
        if problem is not None:
            raise Fatal(problem)
        return message.raw()

    def _copy_out_begins(self, message: pg.Message, head: Pending) -> list[bytes]:
        """COPY ... TO STDOUT: its rows come as CopyData, masked by the columns its
        statement names (copy_rows.py); one that cannot be read so is refused."""
        overall, formats = pg.copy_response(message.body)
        run = head.run
        mask = run.exchange.mask if run is not None else None
        if run is None or mask is None:
            return [message.raw()]
        exchange = run.exchange
        try:
            statement = str(exchange.request["body"]) if exchange.request else ""
            self.state.copy_out = rows_of(self.state.masker, mask, statement,
                                          exchange.meaning, overall == 1, len(formats),
                                          run.copy_types)
        except ResultRefused as exc:
            answer = exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
            return self._refuse_midway(head, refusal_message(answer))
        return [message.raw()]

    def _copy_data(self, message: pg.Message, head: Pending) -> list[bytes]:
        copy_out = self.state.copy_out
        assert copy_out is not None
        run = head.run
        try:
            masked_line = (copy_out.line(message.body)[0] if run is None
                           else run.masked(functools.partial(copy_out.line, message.body)))
        except ResultRefused as exc:  # a line not in its encoding
            if run is None:
                raise Fatal(str(exc)) from None
            answer = run.exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
            return self._refuse_midway(head, refusal_message(answer))
        if run is not None:
            run.rows += 1
        return [pg.encode(b"d", masked_line)]


def masked_fields(masker: Masker, kind: bytes, fields: dict[str, str],
                  head: Pending | None) -> bytes:
    """An error or notice (`kind`) with its texts masked (`mask_fields`)."""
    return pg.encode_fields(kind, mask_fields(masker, fields, head))


def mask_fields(masker: Masker, fields: dict[str, str],
                head: Pending | None) -> dict[str, str]:
    """An error's or notice's fields with their texts masked: a unique violation's
    detail quotes the row (`Key (ssn)=(078-05-1120) already exists`), a cast's
    message the value (`ssn::int`), which may be derived: kept only as the
    statement's text holds it. What the record says of an error comes from these,
    never from the database's own: the record is never less masked than the client's
    answer."""
    run = head.run if head is not None else None
    if run is not None:
        request = run.exchange.request
        fields = error_fields(fields, str(request["body"]) if request else "",
                              run.exchange.mask)
    texts = {k: v for k, v in fields.items() if k in "MDHWqp"}
    masked_texts, _ = masker.mask_json(texts, record_mask(head))
    return {**fields, **masked_texts}


class _LastWord(pg.Framer):
    """The database's messages as they complete, less the FATAL error it ends a session
    with: kept as its last word (`last_word`), relayed when it closes, whatever answer
    it came in place of (the front's own questions', a measured write's held ones)."""

    last_word: dict[str, str] | None = None

    def feed(self, data: bytes) -> list[pg.Message]:
        out = []
        for message in super().feed(data):
            fields = pg.fields(message.body) if message.kind == b"E" else {}
            # V: the severity as PostgreSQL names it (lc_messages translates S).
            if fields.get("V", fields.get("S")) in ("FATAL", "PANIC"):
                self.last_word = self.last_word or fields
            else:
                out.append(message)
        return out

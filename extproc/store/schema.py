"""The store's tables, as numbered migrations per component, applied at connect.

Each component (recording, approvals, policy, postgres, session_keys, activity,
activity_live, sessions, egress, mcp_sessions, terminal, slack, live_sessions,
ended_sessions, live_attendance, budgets, flow) owns a list
of steps; the version a store has reached is kept in `tollgate_schema`. A step runs once, in a
transaction with the version bump, so two processes starting together cannot both apply
it (the second waits for the lock, then finds the version already there). A store newer
than this tollgate is refused rather than written with an older idea of its tables.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from extproc.store.errors import StoreError

if TYPE_CHECKING:
    from extproc.store.connection import Connection

# A step's statement: SQL, or (where SQL alone cannot: a random value) a function run
# on the connection, in the step's transaction.
Statement = str | Callable[["Connection"], None]


def _make_store_id(connection: Connection) -> None:
    """The store's id, made once (with the store, or on its first start after this step
    came): random, so that two stores never share one, whatever they were copied from."""
    connection.execute("INSERT INTO store_id (id, made_us) VALUES (?, ?)",
                       (secrets.token_hex(8), int(time.time() * 1_000_000)))


# Standard SQL that SQLite and PostgreSQL both take: TEXT, BIGINT, INTEGER.
MIGRATIONS: dict[str, list[list[Statement]]] = {
    "recording": [
        [
            # One row per record. `content` is the record's canonical JSON, exactly as
            # hashed; the columns before it are copies of its fields, for searching
            # (`tollgate audit verify` checks that they still match the content).
            """CREATE TABLE records (
                writer TEXT NOT NULL,
                seq BIGINT NOT NULL,
                id TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                started_us BIGINT NOT NULL,
                trace_id TEXT NOT NULL,
                session_id TEXT NOT NULL,
                identity TEXT,
                target TEXT,
                action TEXT NOT NULL,
                status INTEGER,
                content TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (writer, seq)
            )""",
            "CREATE INDEX records_started ON records (started_us)",
            "CREATE INDEX records_trace ON records (trace_id)",
            "CREATE INDEX records_session ON records (session_id)",
            # Signed statements about a chain: `checkpoint` (record `seq` of `writer`
            # has `hash`) and `prune` (records up to `seq` were pruned; the last had
            # `hash`, which the first remaining record names as its predecessor).
            """CREATE TABLE checkpoints (
                writer TEXT NOT NULL,
                seq BIGINT NOT NULL,
                kind TEXT NOT NULL,
                hash TEXT NOT NULL,
                signed_us BIGINT NOT NULL,
                key_id TEXT NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (writer, seq, kind)
            )""",
        ],
        [
            # Which writers exist: one row each time a writer starts (a new process, or a
            # named writer continuing its chain at `seq`), naming the anchor log its
            # signed statements go to (`anchors.identity`; NULL: none). `verify` holds
            # the log to it: a log that lacks a registration or the newest checkpoint of
            # a writer anchored there was cut short.
            """CREATE TABLE writers (
                writer TEXT NOT NULL,
                registered_us BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                anchor TEXT,
                PRIMARY KEY (writer, registered_us)
            )""",
        ],
        [
            # One identity's latest records (the monitor page's alerts and refusals).
            "CREATE INDEX records_identity ON records (identity, started_us)",
        ],
        [
            # Sessions kept whatever retention says (recording/retention.py): their records,
            # and those sharing a trace with them, are not pruned while held.
            """CREATE TABLE legal_holds (
                session_id TEXT PRIMARY KEY,
                held_us BIGINT NOT NULL,
                held_by TEXT NOT NULL,
                reason TEXT NOT NULL
            )""",
            # A `cut` statement's first record: records `from_seq`..`seq` were pruned from
            # among kept ones, the last with `hash` (NULL for every other kind).
            "ALTER TABLE checkpoints ADD COLUMN from_seq BIGINT",
        ],
        [
            # The store's id (one row): what a writer's signed statements name, in the
            # store and in the anchor log, so that a log two stores share holds each to
            # its own anchors (recording/verify.py). Never changed: a store whose id
            # differs from what its statements name is named by verify.
            """CREATE TABLE store_id (
                id TEXT PRIMARY KEY,
                made_us BIGINT NOT NULL
            )""",
            _make_store_id,
            # The store a statement names (NULL: signed before stores had ids, or a
            # prune or cut statement).
            "ALTER TABLE checkpoints ADD COLUMN store_id TEXT",
        ],
    ],
    "approvals": [
        [
            # One row per request held for a human. `fingerprint` is what a retry must
            # match to pass on a `once` grant; `status` moves pending -> approved |
            # denied (| expired, read from `expires_us`), and approved -> used once a
            # `once` grant has let its request through.
            """CREATE TABLE approvals (
                id TEXT PRIMARY KEY,
                fingerprint TEXT NOT NULL,
                requester TEXT NOT NULL,
                identity TEXT NOT NULL,
                target TEXT NOT NULL,
                summary TEXT NOT NULL,
                request TEXT NOT NULL,
                approvers TEXT NOT NULL,
                rules TEXT NOT NULL,
                reasons TEXT NOT NULL,
                grant_mode TEXT NOT NULL,
                grant_minutes INTEGER,
                status TEXT NOT NULL,
                created_us BIGINT NOT NULL,
                expires_us BIGINT NOT NULL,
                trace_id TEXT NOT NULL,
                span_id TEXT NOT NULL,
                held_by TEXT NOT NULL,
                decided_by TEXT,
                decided_us BIGINT,
                reason TEXT,
                grant_until_us BIGINT,
                used_us BIGINT,
                used_trace_id TEXT,
                notified TEXT
            )""",
            "CREATE INDEX approvals_fingerprint ON approvals (fingerprint, status)",
            "CREATE INDEX approvals_status ON approvals (status, created_us)",
            "CREATE INDEX approvals_window ON approvals (requester, target, grant_mode, status)",
        ],
        [
            # The tool definitions an MCP target's server declared (approvals/pins.py):
            # `pinned` is the SHA-256 of the one trusted (first seen, or approved since),
            # `seen` of the one it declares now; when they differ, `approval_id` is the
            # approval asked for the new one, and calls wait for it.
            """CREATE TABLE mcp_tools (
                target TEXT NOT NULL,
                tool TEXT NOT NULL,
                pinned TEXT NOT NULL,
                pinned_definition TEXT NOT NULL,
                pinned_us BIGINT NOT NULL,
                pinned_by TEXT NOT NULL,
                seen TEXT NOT NULL,
                seen_definition TEXT NOT NULL,
                seen_us BIGINT NOT NULL,
                approval_id TEXT,
                PRIMARY KEY (target, tool)
            )""",
        ],
        [
            # Until when the held request waits at most (its policy's `hold_seconds`,
            # capped): what approvers are told. NULL where nothing waits (a changed MCP
            # tool definition) and on approvals older than this step.
            "ALTER TABLE approvals ADD COLUMN hold_until_us BIGINT",
        ],
        [
            # The lease of the request that waits on it, renewed by its waiter every few
            # seconds while it waits (approvals/store.py): past it nobody waits, as when
            # the client left or the replica holding it died. NULL: nobody waits.
            "ALTER TABLE approvals ADD COLUMN waiting_until_us BIGINT",
        ],
        [
            # Two-person approval and beyond: how many distinct approvers the policy asked
            # for, and who approved so far (a JSON list; pending until they are enough).
            "ALTER TABLE approvals ADD COLUMN approvals_needed INTEGER NOT NULL DEFAULT 1",
            "ALTER TABLE approvals ADD COLUMN approved_by TEXT NOT NULL DEFAULT '[]'",
        ],
        [
            # When a client was first answered with it still pending (its hold ended
            # undecided, or was interrupted): from then a retry may wait on it or pass
            # on it. NULL: no client was told of it, so a waiter that leaves withdraws
            # it (approvals/store.py).
            "ALTER TABLE approvals ADD COLUMN told_us BIGINT",
        ],
    ],
    "policy": [
        [
            # The policy revision each process serves (exchange/revisions.py), and when
            # each revision was first served anywhere: processes sharing the store see
            # when they disagree, and which revision is the newest.
            """CREATE TABLE policy_revisions (
                process TEXT PRIMARY KEY,
                revision TEXT NOT NULL,
                seen_us BIGINT NOT NULL
            )""",
            """CREATE TABLE policy_revisions_seen (
                revision TEXT PRIMARY KEY,
                first_us BIGINT NOT NULL
            )""",
        ],
    ],
    "postgres": [
        [
            # The cancel keys the PostgreSQL front gave its clients (in session_keys since):
            # a CancelRequest is a connection of its own, which Envoy may hand to any
            # worker of any replica; this says which front holds the session.
            """CREATE TABLE postgres_cancel_keys (
                process_id BIGINT PRIMARY KEY,
                secret TEXT NOT NULL,
                address TEXT NOT NULL,
                created_us BIGINT NOT NULL
            )""",
        ],
        [
            # Its keys are in session_keys now, beside the MySQL front's connection ids.
            "DROP TABLE postgres_cancel_keys",
        ],
    ],
    "session_keys": [
        [
            # The ids the protocol fronts gave their clients' sessions (store/
            # session_keys.py): PostgreSQL's cancel keys, MySQL's connection ids. A
            # request naming one (a CancelRequest, a KILL) is a connection of its own,
            # which Envoy may hand to any worker of any replica; this says which front
            # holds the session, and whose it is (`target`, `subject`: NULL before a login).
            """CREATE TABLE session_keys (
                front TEXT NOT NULL,
                id BIGINT NOT NULL,
                secret TEXT NOT NULL,
                address TEXT NOT NULL,
                target TEXT,
                subject TEXT,
                created_us BIGINT NOT NULL,
                PRIMARY KEY (front, id)
            )""",
        ],
    ],
    "activity": [
        [
            # What each identity (`sub:<subject>`) and token (`jti:<id>`) has been doing
            # (activity/tracker.py), per clock minute: counts per metric, summed across
            # workers and replicas; `target:`, `environment:`, `address:` metrics count
            # exchanges per distinct value. Kept a day and a little more.
            """CREATE TABLE activity_counts (
                key TEXT NOT NULL,
                minute BIGINT NOT NULL,
                metric TEXT NOT NULL,
                value BIGINT NOT NULL,
                PRIMARY KEY (key, minute, metric)
            )""",
            "CREATE INDEX activity_counts_minute ON activity_counts (minute)",
            # Which alert (rule, identity) was last raised, and until when a repeat is
            # not (exchange/alerts.py): one alert per burst over every replica.
            """CREATE TABLE alerts_raised (
                rule TEXT NOT NULL,
                identity TEXT NOT NULL,
                until_us BIGINT NOT NULL,
                trace_id TEXT NOT NULL,
                PRIMARY KEY (rule, identity)
            )""",
        ],
    ],
    "activity_live": [
        [
            # The few counts a rule needs summed over every process at decision time
            # (activity/live.py), per clock minute: an identity's refusals (`sub:`), the
            # personal values masked per target (`target:`) and per group (`group:`).
            # Written as they happen, not every sync; kept two hours.
            """CREATE TABLE activity_live (
                key TEXT NOT NULL,
                minute BIGINT NOT NULL,
                metric TEXT NOT NULL,
                value BIGINT NOT NULL,
                PRIMARY KEY (key, minute, metric)
            )""",
            "CREATE INDEX activity_live_minute ON activity_live (minute)",
            # The source addresses (`address:A`) and environments (`environment:E`) each
            # token (`jti:`) was used from, and the last minute it was: one row each.
            """CREATE TABLE activity_seen (
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                last_minute BIGINT NOT NULL,
                PRIMARY KEY (key, value)
            )""",
            "CREATE INDEX activity_seen_last ON activity_seen (last_minute)",
        ],
    ],
    "sessions": [
        [
            # Each token's (`token:<jti>`) and identity's (`identity:<sub>`) latest session
            # (recording/sessions.py): its id, and the start of the first and the last
            # exchange it holds, so every writer groups their exchanges alike.
            """CREATE TABLE session_marks (
                key TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                first_us BIGINT NOT NULL,
                last_us BIGINT NOT NULL
            )""",
        ],
    ],
    "egress": [
        [
            # Which destinations (host:port) of the egress proxy each identity (its
            # `sub`; `*` for anyone) was let through to, and since when (activity/seen.py):
            # input.egress.seen, a first-seen destination's alert.
            """CREATE TABLE egress_destinations (
                identity TEXT NOT NULL,
                destination TEXT NOT NULL,
                first_us BIGINT NOT NULL,
                PRIMARY KEY (identity, destination)
            )""",
        ],
    ],
    "mcp_sessions": [
        [
            # Which identity (`issuer`, `subject`) opened each MCP session of a target
            # (http/mcp_sessions.py): a request naming a session passes only as its
            # owner. Ids are kept as SHA-256 digests, exact (`session_hash`) and read as
            # loosely as a server may (`canonical_hash`, to tell a variant of another's
            # id); `ended_us` is set when its owner ended it. `used_us` (touched hourly)
            # says when it was last used: rows idle a day are deleted.
            """CREATE TABLE mcp_sessions (
                target TEXT NOT NULL,
                session_hash TEXT NOT NULL,
                canonical_hash TEXT NOT NULL,
                issuer TEXT NOT NULL,
                subject TEXT NOT NULL,
                transport TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                bound_us BIGINT NOT NULL,
                used_us BIGINT NOT NULL,
                ended_us BIGINT,
                PRIMARY KEY (target, session_hash)
            )""",
            "CREATE INDEX mcp_sessions_canonical ON mcp_sessions (canonical_hash)",
            "CREATE INDEX mcp_sessions_used ON mcp_sessions (used_us)",
        ],
    ],
    "slack": [
        [
            # Each approval's message in Slack (approvals/slack/messages.py): where it is
            # (`channel`, `ts`), what it shows now (`shown`: the state it was drawn in,
            # claimed by the process that redraws it), and whether that is its last
            # state (`final`: nothing changes it any more).
            """CREATE TABLE slack_messages (
                approval_id TEXT PRIMARY KEY,
                channel TEXT NOT NULL,
                ts TEXT NOT NULL,
                shown TEXT NOT NULL,
                final INTEGER NOT NULL,
                updated_us BIGINT NOT NULL
            )""",
            "CREATE INDEX slack_messages_final ON slack_messages (final)",
            # Slack users linked to a signed-in identity (approvals/slack/links.py): a
            # click decides as `identity` (JSON: subject, issuer, groups) until
            # `expires_us`. One-time codes (`code_hash`: their SHA-256) bring a Slack
            # user to the page where they link (`slack_name` shown there, so a person
            # sees whose Slack user they are about to speak for).
            """CREATE TABLE slack_links (
                team_id TEXT NOT NULL,
                slack_user TEXT NOT NULL,
                subject TEXT NOT NULL,
                identity TEXT NOT NULL,
                linked_us BIGINT NOT NULL,
                expires_us BIGINT NOT NULL,
                PRIMARY KEY (team_id, slack_user)
            )""",
            """CREATE TABLE slack_link_codes (
                code_hash TEXT PRIMARY KEY,
                team_id TEXT NOT NULL,
                slack_user TEXT NOT NULL,
                slack_name TEXT NOT NULL,
                expires_us BIGINT NOT NULL
            )""",
        ],
        [
            # How each link was made: `code` (the one-time link, signed in on the page)
            # or `email` (the e-mail Slack confirmed for the Slack user, the one an
            # identity signed in with, verified by the provider).
            "ALTER TABLE slack_links ADD COLUMN linked_by TEXT NOT NULL DEFAULT 'code'",
            # Who signed in to the admin pages (admin.oidc) with which verified e-mail
            # (lower-cased), kept only with approvals.slack.link_by_email
            # (approvals/slack/emails.py): `identity` (JSON, as slack_links keeps it)
            # until their session's end, `expires_us`; forgotten as they sign out.
            """CREATE TABLE verified_emails (
                email TEXT NOT NULL,
                subject TEXT NOT NULL,
                identity TEXT NOT NULL,
                signed_in_us BIGINT NOT NULL,
                expires_us BIGINT NOT NULL,
                PRIMARY KEY (email, subject)
            )""",
        ],
    ],
    "terminal": [
        [
            # Interactive SSH sessions' output as the agent saw it, asciicast v2 lines, in
            # chunks as written (recording/terminal.py): `recording_id` is the trace id of the
            # exchange whose record keeps the whole's size and SHA-256.
            """CREATE TABLE terminal_recordings (
                recording_id TEXT NOT NULL,
                chunk INTEGER NOT NULL,
                session_id TEXT NOT NULL,
                data TEXT NOT NULL,
                written_us BIGINT NOT NULL,
                PRIMARY KEY (recording_id, chunk)
            )""",
            "CREATE INDEX terminal_recordings_session ON terminal_recordings (session_id)",
        ],
    ],
    "live_sessions": [
        [
            # The sessions open now on the connection fronts (exchange/live_store.py),
            # one row each, written by the process (`replica`, its record writer's
            # name) holding it every few seconds and deleted when it ends; a replica
            # not heard of (policy_revisions) is not listed. `end_*`: an end asked of
            # it through the admin API, which its replica carries out.
            """CREATE TABLE live_sessions (
                session_id TEXT PRIMARY KEY,
                front TEXT NOT NULL,
                identity TEXT NOT NULL,
                target TEXT,
                replica TEXT NOT NULL,
                started_us BIGINT NOT NULL,
                active_us BIGINT NOT NULL,
                exchanges BIGINT NOT NULL,
                refusals BIGINT NOT NULL,
                holds INTEGER NOT NULL,
                end_reason TEXT,
                end_by TEXT,
                end_us BIGINT
            )""",
            "CREATE INDEX live_sessions_replica ON live_sessions (replica)",
            # Identities (a token's subject) refused on every front and replica until
            # `until_us` (NULL: until unlocked).
            """CREATE TABLE identity_locks (
                identity TEXT PRIMARY KEY,
                reason TEXT NOT NULL,
                locked_by TEXT NOT NULL,
                locked_us BIGINT NOT NULL,
                until_us BIGINT
            )""",
        ],
        [
            # The ends and locks a replica kept on its disk while the store was out
            # (exchange/kept.py), by id, each inserted in the transaction that writes
            # its act: an act whose file outlived that commit (a crash before the file
            # was deleted) is found here and not written twice.
            """CREATE TABLE kept_acts (
                act_id TEXT PRIMARY KEY,
                written_us BIGINT NOT NULL
            )""",
        ],
    ],
    "ended_sessions": [
        [
            # The sessions a moderator ended, refused on every replica until `until_us`
            # (exchange/live_store.py): an HTTP, LLM, MCP or egress session is no
            # connection one process holds, so its id is refused wherever it comes back.
            """CREATE TABLE ended_sessions (
                session_id TEXT PRIMARY KEY,
                reason TEXT NOT NULL,
                ended_by TEXT NOT NULL,
                ended_us BIGINT NOT NULL,
                until_us BIGINT NOT NULL
            )""",
        ],
    ],
    "live_attendance": [
        [
            # Who attends a live session now (exchange/presence.py): a watcher or a
            # peer who joined, through the admin API of any replica, which beats
            # `seen_us` while they stay and deletes the row as they go; the replica
            # holding a moderated session reads it to know a moderator is there.
            """CREATE TABLE live_attendance (
                attendance_id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                who TEXT NOT NULL,
                role TEXT NOT NULL,
                moderator INTEGER NOT NULL,
                replica TEXT NOT NULL,
                since_us BIGINT NOT NULL,
                seen_us BIGINT NOT NULL
            )""",
            "CREATE INDEX live_attendance_session ON live_attendance (session_id)",
            # Lines a peer typed into a terminal session, waiting for the replica
            # holding it, which takes them (deleting them) into the session's line
            # editor in the order asked.
            """CREATE TABLE live_input (
                input_id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                typist TEXT NOT NULL,
                data TEXT NOT NULL,
                asked_us BIGINT NOT NULL
            )""",
            "CREATE INDEX live_input_session ON live_input (session_id)",
        ],
    ],
    "budgets": [
        [
            # What each budget's key has used in a window (activity/budgets.py): taken
            # by a conditional UPDATE before each decision, corrected as it is settled.
            """CREATE TABLE budget_usage (
                budget TEXT NOT NULL,
                subject TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                window_seconds BIGINT NOT NULL,
                calls BIGINT NOT NULL,
                tokens BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                PRIMARY KEY (budget, subject, window_start)
            )""",
            # What each exchange reserved, per budget entry, until it is settled once.
            """CREATE TABLE budget_reservations (
                exchange_id TEXT NOT NULL,
                budget TEXT NOT NULL,
                subject TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                calls BIGINT NOT NULL,
                tokens BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                settled INTEGER NOT NULL,
                reserved_s BIGINT NOT NULL,
                PRIMARY KEY (exchange_id, budget, subject)
            )""",
        ],
    ],
    "flow": [
        [
            # What an identity or an agent run received that may steer it (untrusted
            # content: activity/flow.py), one row per scope (`sub:S`, `run:T`) and answer.
            """CREATE TABLE flow_received (
                scope TEXT NOT NULL,
                at_us BIGINT NOT NULL,
                target TEXT NOT NULL,
                cause TEXT NOT NULL,
                kinds TEXT NOT NULL,
                trace_id TEXT NOT NULL
            )""",
            "CREATE INDEX flow_received_scope ON flow_received (scope, at_us)",
            "CREATE INDEX flow_received_at ON flow_received (at_us)",
        ],
        [
            # The keyed fingerprints of protected values an identity or run received
            # unmasked (masking/fingerprints.py), per scope and the target they came from.
            """CREATE TABLE flow_values (
                scope TEXT NOT NULL,
                digest TEXT NOT NULL,
                target TEXT NOT NULL,
                kind TEXT NOT NULL,
                at_us BIGINT NOT NULL,
                trace_id TEXT NOT NULL,
                PRIMARY KEY (scope, digest, target)
            )""",
            "CREATE INDEX flow_values_scope ON flow_values (scope, at_us)",
            "CREATE INDEX flow_values_at ON flow_values (at_us)",
        ],
    ],
}


# The advisory lock (per database) under which tollgate_schema is created: "tollgate".
_CREATE_LOCK = int.from_bytes(b"tollgate")


def migrate(connection: Connection) -> None:
    """Bring every component's tables to the newest version this tollgate knows."""
    with connection.transaction():
        if connection.backend == "postgresql":
            # CREATE TABLE IF NOT EXISTS is not safe against itself on PostgreSQL: of two
            # replicas creating the table at once, one fails on a catalog unique index.
            connection.execute("SELECT pg_advisory_xact_lock(?)", (_CREATE_LOCK,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS tollgate_schema "
            "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
    for component, steps in MIGRATIONS.items():
        with connection.transaction():
            if connection.backend == "postgresql":
                # One migrator at a time across replicas; released at commit.
                connection.execute("LOCK TABLE tollgate_schema IN EXCLUSIVE MODE")
            found = connection.execute(
                "SELECT version FROM tollgate_schema WHERE component = ?", (component,))
            version = found[0][0] if found else 0
            if version > len(steps):
                raise StoreError(
                    f"{connection.where}: its {component} tables are at version {version}, "
                    f"newer than this tollgate knows ({len(steps)}); upgrade tollgate")
            for statements in steps[version:]:
                for statement in statements:
                    if isinstance(statement, str):
                        connection.execute(statement)
                    else:
                        statement(connection)
            if version < len(steps):
                connection.execute(
                    "DELETE FROM tollgate_schema WHERE component = ?", (component,))
                connection.execute(
                    "INSERT INTO tollgate_schema (component, version) VALUES (?, ?)",
                    (component, len(steps)))

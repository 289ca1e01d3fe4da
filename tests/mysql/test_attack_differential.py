"""The attack pass on the MySQL front, proven against the real MariaDB.

An attacker's texts, class by class — texts the reader could lex otherwise than the server
(comments, quotes, escapes, literals), session settings that change how the server lexes
later texts, dynamic and deferred SQL, protected values smuggled out of the mask (through
functions, variables, views, copies, errors and warnings), and the protocol itself — are
sent through Envoy and the MySQL front, as an agent and as a dba, to a private MariaDB that
logs every command it runs (`--general-log`) and every statement it executes (the
performance schema's statement history, one event per statement of a multi-statement
text). Each session is then held against its record (`Gateway.session_records`):

- every text the server ran was allowed, as often as it ran, and none it refused ran;
- every statement the server executed is one the record's reading of an allowed text
  lists (a DROP the reader did not see is a statement the server ran unread);
- for an agent, no protected value (the sentinels of `shop.customers`) reached the
  client, as sent or reversed, hex-encoded or in base64, in a row or an error.

A hypothesis strategy mixes the attack fragments into texts and sessions; the explicit
cases pin each class.
"""

from __future__ import annotations

import base64
import binascii
import socket
import ssl
import struct
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.mysql import effect
from extproc.mysql.flags import SERVER_MORE_RESULTS_EXISTS
from extproc.mysql.framing import MAX_PAYLOAD, encode
from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway, request_text
from tests.support.mariadb import MariaDb, private_mariadb
from tests.support.mysql_shop import Account, effect_statements, set_up
from tests.support.statement_log import entries

pytestmark = pytest.mark.e2e

AGENT_NAME, DBA_NAME = "svc-my-attack", "dba-my-attack"
AGENT = tokens.token(AGENT_NAME, ["agents"])
DBA = tokens.token(DBA_NAME, ["dba"])
PASSWORD = "attack-secret"
# Protected values, of letters no other answer holds: any 4 of them in a row, in any
# column or message, forwards or backwards, encoded or not, is a leak.
SSN, EMAIL_USER, KEY = "QZXJVWKQYPHZ", "vwkqzxjq", "keyJQXZKWVQZPHY"
SENTINELS = [SSN, EMAIL_USER, KEY, "JXQZPWKV"]
CUSTOMERS = [(1, "Ada", f"{EMAIL_USER}@example.com", SSN, KEY),
             (2, "Bob", "jxqzpwkv@example.com", "JXQZPWKVQYHZ", "keyWKQYPHZJXQZV")]
# The front's limit: a statement split over two packets fits, a third packet does not.
MAX_MESSAGE = 17 * 1024 * 1024

# -- the attack fragments, class by class ------------------------------------------------------

# 1. Lexing: texts whose statements depend on how comments, quotes, escapes and literals
# are read, each with a statement after the point a wrong reading stops seeing (`{hide}`).
HIDDEN = "INSERT INTO canary VALUES (1)"
LEXING_TEMPLATES = [
    "SELECT 1, {{# \n d '2020-01-01'}}; {hide}; -- #}} 2",
    "SELECT 1 {{# ; {hide} #}}",
    "SELECT 1--1; {hide}",
    "SELECT 1-- 1; {hide}",
    "SELECT 1--\x01; {hide}",
    "SELECT 1--\x7f; {hide}",
    "SELECT 1 #x\n; {hide}",
    "SELECT 1 /* /* */ ; {hide}; /* */",
    "SELECT 1 /*!50000 ; {hide} */",
    "SELECT 1 /*M!100101 ; {hide} */",
    "SELECT 1 /*+ ; {hide} */",
    "SELECT 'a\\'; {hide}; -- '",
    "SELECT 'a''; {hide}; -- '",
    'SELECT "a\\"; {hide}; -- "',
    "SELECT 'a\\'', \"b\\\"; {hide}; -- \"",
    "SELECT `a;b`, `c``; {hide}; -- `",
    "SELECT N'a\\'; {hide}; -- '",
    "SELECT _utf8mb4'a\\'; {hide}; -- '",
    "SELECT X'41', 0x41, b'1', _binary'b'; {hide}",
    "SELECT 1 --\u00a0; {hide}",
    "SELECT\u00a01; {hide}",
    "SELECT 1\x00; {hide}",
    "SELECT _gbk'中\\\\', ' ; {hide}; -- '",  # an introducer leaves the lexing alone
]
# An agent may insert into canary, not drop it: the generated sessions hide the INSERT (what
# the reader sees runs, and must be in the record), the explicit test the DROP.
LEXING = [t.format(hide=HIDDEN) for t in LEXING_TEMPLATES]
LEXING_DROPS = [t.format(hide="DROP TABLE canary") for t in LEXING_TEMPLATES]
# 2. Settings that change how the server lexes what follows (refused, or followed).
SETTINGS = [
    "SET NAMES gbk", "SET CHARACTER SET big5", "SET character_set_client = 28",
    "SET @@session.character_set_client = sjis", "SET NAMES DEFAULT",
    "SET sql_mode = 'ANSI_QUOTES'", "SET @@session.sql_mode = 'NO_BACKSLASH_ESCAPES'",
    "SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
    "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT 1", "/*!40101 SET NAMES gbk */",
    "SET NAMES utf8mb4", "SET PASSWORD = PASSWORD('x')", "CHARSET gbk",
    # What gbk would make of the next text: the DROP runs where no reading sees it.
    f"SELECT '中\\\\', ' ; {HIDDEN}; -- '",
]
# 3. Dynamic and deferred SQL, and statements that reach past the database.
DYNAMIC = [
    "PREPARE s FROM 'DROP TABLE canary'", "SET @q = CONCAT('DR', 'OP TABLE canary')",
    "PREPARE s FROM @q", "EXECUTE s", "EXECUTE IMMEDIATE 'DROP TABLE canary'", "CALL p()",
    "CREATE PROCEDURE p() DROP TABLE canary", "DO (SELECT 1)", "HANDLER canary OPEN",
    "SELECT 'x' INTO OUTFILE 'attack-outfile'", "SELECT LOAD_FILE('/etc/passwd')",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE scratch", "INSTALL SONAME 'ha_connect'",
    "SHUTDOWN", "KILL CONNECTION_ID()", "BINLOG 'AAAA'", "GRANT ALL ON *.* TO CURRENT_USER",
    "CREATE USER intruder", "RENAME TABLE canary TO gone", "TRUNCATE canary",
    "REPLACE INTO scratch (id) VALUES (1)", "DELETE FROM scratch LIMIT 1000000",
    "UPDATE scratch SET id = 2 ORDER BY id LIMIT 1", "DELETE FROM scratch WHERE id = 1",
    "INSERT INTO scratch (id) VALUES (3) ON DUPLICATE KEY UPDATE id = 4",
    "DELETE s FROM scratch s JOIN canary c ON s.id = c.v WHERE s.id = 1",
    "CREATE TABLE fx (a int) ENGINE=FEDERATED CONNECTION='mysql://root@127.0.0.1/mysql/user'",
    "SHOW FULL PROCESSLIST", "SELECT info FROM information_schema.processlist",
    "LOAD XML INFILE '/etc/passwd' INTO TABLE scratch", "ALTER USER CURRENT_USER "
    "IDENTIFIED BY 'x'", "CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO DROP TABLE canary",
    "CREATE TRIGGER t AFTER INSERT ON scratch FOR EACH ROW DELETE FROM canary",
    "SET GLOBAL init_connect = 'SET NAMES gbk'", "VALUES (1)", "USE mysql", "TABLE canary",
]
# 4. Protected values taken out of the mask.
MASKING = [
    "SELECT ssn, email, api_key FROM customers",
    "SELECT CONCAT(email, '') AS e, CONCAT_WS(',', ssn) AS s FROM customers",
    "SELECT REVERSE(ssn) AS r, HEX(ssn) AS h, TO_BASE64(api_key) AS b FROM customers",
    "SELECT UNHEX(HEX(ssn)) AS u, CAST(ssn AS BINARY) AS c, CONVERT(ssn USING latin1) AS v "
    "FROM customers",
    "SELECT GROUP_CONCAT(ssn) AS g, JSON_OBJECT('s', ssn) AS j, JSON_ARRAYAGG(email) AS a "
    "FROM customers",
    "SELECT ELT(1, ssn) AS e, SUBSTRING(ssn, 1, 6) AS s, INSERT(ssn, 1, 0, 'x') AS i, "
    "LPAD(ssn, 20, '*') AS l, SOUNDEX(ssn) AS x FROM customers",
    "SELECT ssn AS note, `api_key` `memo` FROM customers",
    "SELECT x FROM (SELECT ssn AS x FROM customers) d",
    "SELECT name FROM customers UNION ALL SELECT ssn FROM customers",
    "SELECT (SELECT REVERSE(ssn) FROM customers LIMIT 1)",
    'SELECT REVERSE("ssn") FROM customers',
    "SELECT ssn INTO @v FROM customers LIMIT 1", "SELECT @v",
    "SELECT @w := REVERSE(ssn) FROM customers", "SELECT @w",
    "SET @u = (SELECT api_key FROM customers LIMIT 1)", "SELECT @u",
    "SELECT * FROM information_schema.user_variables",
    "CREATE VIEW leak AS SELECT REVERSE(ssn) AS r FROM customers", "SELECT * FROM leak",
    "CREATE TABLE copied AS SELECT ssn AS note FROM customers", "SELECT * FROM copied",
    "INSERT INTO scratch (id, note) SELECT id, ssn FROM customers", "SELECT note FROM scratch",
    "UPDATE customers SET name = ssn WHERE id = 1", "SELECT name FROM customers",
    "ALTER TABLE customers ADD COLUMN r text AS (REVERSE(ssn)) VIRTUAL",
    "SELECT EXTRACTVALUE(1, CONCAT('~', (SELECT ssn FROM customers LIMIT 1)))",
    "SELECT UPDATEXML(1, CONCAT(0x7e, (SELECT api_key FROM customers LIMIT 1)), 1)",
    "SELECT ssn + 0 FROM customers", "SHOW WARNINGS",
    "SELECT CAST(ssn AS DOUBLE) AS d FROM customers; SHOW WARNINGS",
    "ALTER TABLE twins ADD UNIQUE (k)",
    "SET time_zone = (SELECT ssn FROM customers LIMIT 1)",
    "SELECT 1 FROM customers WHERE ROW(1, 1) > (SELECT COUNT(*), CONCAT(ssn, FLOOR(RAND(0)*2)) x"
    " FROM customers GROUP BY x)",
    "SHOW CREATE TABLE customers",
]

# 5. Results character sets the front does not read answers in (it reads UTF-8): in utf16
# a NUL precedes each ASCII letter, unconverted (NULL) each value comes in its column's own
# set, and the detectors of the mask match nothing.
RESULTS_CHARSETS = [
    "SET character_set_results = utf16", "SET SESSION character_set_results = 'utf32'",
    "SET @@character_set_results = ucs2", "SET @@session.character_set_results = utf16le",
    "SET @@session.character_set_results = NULL", "SET @a = 1, character_set_results = utf16",
    "SET NAMES latin1", "SET CHARACTER SET latin1",
    "SET STATEMENT character_set_results = utf16 FOR SELECT note FROM notes",
]

# Pieces the generated texts are made of: around a statement, inside it, after it.
PIECES = ["", " ", "\n", "'", '"', "`", "\\", "\\'", "''", "--", "-- ", "--\t", "#", "/*", "*/",
          "/*+", "{#", "#}", "{", "}", ";", "\x01", "\u00a0", "x'41'", "0x41", "N'", "@", "1"]
text_of_pieces = st.builds(
    lambda first, a, b, c, last: f"{first}{a}{b}{c} {last}",
    st.sampled_from(["SELECT 1", "SELECT 'a'", "SELECT 1 AS x", "SELECT ssn FROM customers"]),
    *[st.sampled_from(PIECES)] * 3,
    st.sampled_from([f"; {HIDDEN}", f"\n; {HIDDEN}", "; DROP TABLE canary", f"; {HIDDEN}; --"]))
STEPS = st.lists(st.one_of(st.sampled_from(LEXING + SETTINGS + DYNAMIC + MASKING),
                           text_of_pieces), min_size=1, max_size=5)

SCHEMA = (
    "CREATE DATABASE shop; "
    "CREATE TABLE shop.customers (id int PRIMARY KEY, name text, email text, ssn text, "
    "api_key text); "
    "INSERT INTO shop.customers VALUES "
    + ", ".join(f"({i}, '{n}', '{e}', '{s}', '{t}')" for i, n, e, s, t in CUSTOMERS) + "; "
    "CREATE TABLE shop.scratch (id int, note text); "
    "CREATE TABLE shop.canary (v int); "
    f"CREATE TABLE shop.twins (k text); INSERT INTO shop.twins VALUES ('{SSN}'), ('{SSN}'); "
    # An e-mail in a column no rule names: only the mask's detectors see it.
    f"CREATE TABLE shop.notes (note text); INSERT INTO shop.notes VALUES ('to {EMAIL_USER}"
    "@example.com'); "
    f"CREATE USER 'gw'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
    "GRANT ALL ON shop.* TO 'gw'@'127.0.0.1'"
)
# The tables a session may change, put back before each (the server is the module's).
RESET = ("DROP VIEW IF EXISTS shop.leak; DROP TABLE IF EXISTS shop.copied, shop.fx; "
         "CREATE TABLE IF NOT EXISTS shop.canary (v int); DELETE FROM shop.canary; "
         "DELETE FROM shop.scratch; "
         "UPDATE shop.customers SET name = 'Ada' WHERE id = 1; "
         f"SET PASSWORD FOR 'gw'@'127.0.0.1' = PASSWORD('{PASSWORD}')")


@dataclass
class Env:
    gw: Gateway
    server: MariaDb


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Env]:
    with private_mariadb("--general-log=1", "--performance-schema=ON",
                         "--performance-schema-consumer-events-statements-current=ON",
                         "--performance-schema-consumer-events-statements-history-long=ON",
                         "--max-allowed-packet=64M") as server:
        setup = server.root(SCHEMA)
        assert setup.returncode == 0, setup.stderr
        account = Account("shop", "gw", PASSWORD)
        target = account.target(upstream=f"127.0.0.1:{server.port}", tls="require")
        with module_gateway(tmp_path_factory, otlp, "mysql-attack", targets=[target],
                            mysql={"max_message_bytes": MAX_MESSAGE},
                            env=account.env,
                            settings={"approvals": {"max_hold_seconds": 1}}) as gw:
            yield Env(gw, server)


# -- a session and what it got ---------------------------------------------------------------


@dataclass
class Session:
    """What a client sent and received: every value of every row, every error."""

    who: str
    received: list[Any] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    sentinel: str = field(default_factory=lambda: f"SELECT 'end of session {uuid.uuid4()}'")


def connect(gw: Gateway, who: str = AGENT_NAME, multi: bool = True) -> Any:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return pymysql.connect(
        host="127.0.0.1", port=gw.ports.mysql, user=who,
        password=AGENT if who == AGENT_NAME else DBA, database="shop", ssl=context,
        connect_timeout=10, read_timeout=30, autocommit=True,
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS if multi else 0)


def run(connection: Any, session: Session, text: str) -> None:
    """One COM_QUERY; what came back is the session's (an error is an answer)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(text)
            while True:
                for row in cursor.fetchall() or ():
                    session.received.extend(row)
                if not cursor.nextset():
                    break
    except pymysql.err.MySQLError as error:
        code, message = (*error.args, "")[:2]
        session.errors.append((int(code), str(message)))
        session.received.append(message)


def play(env: Env, texts: list[str], who: str = AGENT_NAME) -> Session:
    """A fresh session of `who` running `texts`, then the sentinel; audited."""
    assert env.server.root(RESET).returncode == 0
    session = Session(who)
    connection = connect(env.gw, who)
    try:
        for text in texts:
            run(connection, session, text)
        run(connection, session, session.sentinel)
    finally:
        connection.close()
    audit(env, session)
    return session


# -- the oracle ------------------------------------------------------------------------------

# The performance schema's statement events (statement/sql/<name>), as the reader's kinds.
_EVENT_KINDS = {
    "select": "select", "insert": "insert", "insert_select": "insert", "update": "update",
    "update_multi": "update", "delete": "delete", "delete_multi": "delete",
    "replace": "other", "replace_select": "other", "truncate": "truncate",
    "set_option": "set", "change_db": "set", "alter_table": "alter", "grant": "other",
    "create_user": "other", "rename_table": "other", "prepare_sql": "prepare",
    "execute_sql": "execute", "execute_immediate": "execute", "call_procedure": "other",
    "begin": "transaction", "commit": "transaction", "rollback": "transaction",
    "kill": "kill", "do": "other", "ha_open": "other", "load": "copy", "install_plugin": "other",
    "shutdown": "other", "binlog_base64_event": "other", "empty_query": None, "error": None,
}


def _event_kind(name: str) -> str | None:
    if name.startswith(("show_", "show")):
        return "show"
    if name.startswith("create_"):
        return "create"
    if name.startswith("drop_"):
        return "drop"
    return _EVENT_KINDS.get(name, name)


def executed(server: MariaDb, sentinel: str) -> list[tuple[str, str]]:
    """The statements the server executed in the sentinel's session: (kind, text)."""
    found = server.root(
        "SELECT h.THREAD_ID, h.EVENT_NAME, REPLACE(REPLACE(IFNULL(h.SQL_TEXT, ''), '\\n', ' '),"
        " '\\t', ' ') FROM performance_schema.events_statements_history_long h "
        "ORDER BY h.THREAD_ID, h.EVENT_ID")
    rows = [line.split("\t", 2) for line in found.stdout.splitlines()]
    thread = next(t for t, _, text in rows if text == sentinel)
    return [(kind, text) for t, name, text in rows
            if t == thread and name.startswith("statement/sql/")
            and (kind := _event_kind(name.removeprefix("statement/sql/"))) is not None]


def audit(env: Env, session: Session) -> None:
    """The session held against its record, the server's log and what the client got."""
    log: list[tuple[int, str, str]] = []

    def logged() -> bool:
        log[:] = entries(env.server.general_log.read_text(errors="replace"))
        return any(t == session.sentinel for _, _, t in log)

    stack.wait_until(logged, 10, "the server's general log")
    thread = next(n for n, _, t in log if t == session.sentinel)
    ran = Counter(t for n, command, t in log if n == thread and command == "Query")
    records = env.gw.session_records(session.sentinel)
    own = effect_statements(list(ran), records)
    for text in own:
        del ran[text]
    allowed: Counter[str] = Counter()
    read: Counter[str] = Counter()
    for record in records:
        if record["outcome"]["action"] == "allow":
            allowed.update(set_up(record))
            read.update("set" for _ in set_up(record))
        if record["request"]["method"] != "QUERY":
            continue
        text = request_text(record) or ""
        if record["outcome"]["action"] == "allow":
            allowed[text] += 1
            statements = (record.get("meaning") or {}).get("sql", {}).get("statements", [])
            read.update(s["kind"] for s in statements if not s["nested"])
        else:
            assert text not in ran or allowed[text], f"refused, yet the server ran {text!r}"
    assert not ran - allowed, f"the server ran what the record does not allow: {ran - allowed}"
    # (performance_schema keeps a long text's first 1024 characters: by its mark.)
    statements = Counter(kind for kind, text in executed(env.server, session.sentinel)
                         if not (own and text.startswith(effect.MARK)))
    assert not statements - read, (
        f"the server executed statements no reading of an allowed text shows: "
        f"{statements - read}; allowed: {list(allowed)}")
    if session.who == AGENT_NAME:
        leaked = [value for value in session.received if reveals(value)]
        assert not leaked, f"protected values reached the client: {leaked}"


def reveals(value: Any) -> bool:
    """Whether a value the client got shows a sentinel (4 letters of one in a row), as is,
    reversed, or decoded from hex or base64 (a value that is all of it: read leniently,
    base64 made `KWVQ` of a refusal's random trace id, one run in a few hundred)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    candidates = [text, text[::-1]]
    for decode in (binascii.unhexlify, partial(base64.b64decode, validate=True)):
        try:
            decoded = decode(text.strip())
        except (ValueError, binascii.Error):
            continue
        candidates += [decoded.decode("latin-1"), decoded.decode("latin-1")[::-1]]
    found = " ".join(candidates).upper()
    return any(s.upper()[i:i + 4] in found for s in SENTINELS for i in range(len(s) - 3))


# -- generated sessions ----------------------------------------------------------------------


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=STEPS)
def test_generated_attacks_run_only_what_the_record_allowed_and_masked(
        env: Env, steps: list[str]) -> None:
    play(env, steps)


# -- each class, explicitly ------------------------------------------------------------------


def test_texts_lexed_otherwise_run_only_what_was_read(env: Env) -> None:
    """Each hides a DROP TABLE from some reading: refused wherever a reading shows it (or
    the text cannot be read); where none does, the server runs none either."""
    play(env, LEXING_DROPS)
    assert "canary" in env.server.root("SHOW TABLES FROM shop").stdout.split()


def test_settings_that_change_the_lexing_are_refused_or_followed(env: Env) -> None:
    session = play(env, SETTINGS)
    assert any("sql.unreadable" in message for _, message in session.errors)
    assert env.server.root("SELECT count(*) FROM shop.canary").stdout.strip() == "0"
    # The gateway's account kept its password (SET PASSWORD is a privilege).
    pymysql.connect(host="127.0.0.1", port=env.server.port, user="gw", password=PASSWORD,
                    database="shop", ssl={"ssl": {}}).close()


def test_what_a_dba_sets_in_sql_mode_the_readings_follow(env: Env) -> None:
    """A dba may change sql_mode: a text read in every lexing it gives still shows what
    ran (the INSERT hidden from the default reading is the record's), and a column named
    in double quotes is masked as the column it is."""
    session = play(env, ["SET sql_mode = 'ANSI_QUOTES'",
                         f"SELECT 'a\\'' AS \"b\\\"; {HIDDEN}; -- \"",
                         'SELECT REVERSE("ssn") FROM customers',
                         "SET NAMES gbk", f"SELECT '中\\\\', ' ; {HIDDEN}; -- '"], DBA_NAME)
    assert env.server.root("SELECT count(*) FROM shop.canary").stdout.strip() == "1"
    assert not [v for v in session.received if reveals(v)]


def test_dynamic_and_deferred_sql_is_refused_or_read(env: Env) -> None:
    play(env, DYNAMIC)
    tables = env.server.root("SHOW TABLES FROM shop").stdout.split()
    assert "canary" in tables and "fx" not in tables


def test_protected_values_never_reach_an_agent(env: Env) -> None:
    session = play(env, MASKING)
    withheld = [m for code, m in session.errors if "message is withheld" in m]
    assert withheld, session.errors  # XPATH errors quoted the value read


# -- the protocol ------------------------------------------------------------------------------


def raw_session(env: Env) -> tuple[Any, Session]:
    """A logged-in PyMySQL connection whose packets the test writes itself."""
    assert env.server.root(RESET).returncode == 0
    return connect(env.gw), Session(AGENT_NAME)


def send(connection: Any, *packets: bytes) -> None:
    connection._sock.sendall(b"".join(packets))


def packet(payload: bytes, seq: int = 0) -> bytes:
    return encode(seq, payload)


def read_packet(connection: Any) -> bytes:
    """One packet's payload, read as PyMySQL would (from its buffered reader)."""
    header = connection._rfile.read(4)
    if len(header) < 4:
        raise ConnectionError("the gateway closed the connection")
    return bytes(connection._rfile.read(int.from_bytes(header[:3], "little")))


def _ends(payload: bytes) -> bool:
    """An EOF (0xFE, under 9 bytes) or an ERR: the end of a result's columns or rows."""
    return payload[:1] == b"\xff" or (payload[:1] == b"\xfe" and len(payload) < 9)


def answer(connection: Any) -> bytes:
    """The first packet of the next answer; the rest of it (a result's columns and rows,
    the results after it) read away."""
    first = current = read_packet(connection)
    while current[:1] not in (b"\x00", b"\xff"):  # a result set
        for _ in range(2):  # its columns up to their EOF, its rows up to theirs
            while not _ends(end := read_packet(connection)):
                pass
            if end[:1] == b"\xff":
                return first
        if not int.from_bytes(end[3:5], "little") & SERVER_MORE_RESULTS_EXISTS:
            return first
        current = read_packet(connection)
    return first


def finish(env: Env, connection: Any, session: Session) -> None:
    run(connection, session, session.sentinel)
    connection.close()
    audit(env, session)


def test_pipelined_commands_are_each_decided(env: Env) -> None:
    connection, session = raw_session(env)
    # A read, a DROP refused, an INSERT allowed, a read: sent at once, answered in turn.
    send(connection, packet(b"\x03SELECT 1"), packet(b"\x03DROP TABLE canary"),
         packet(b"\x03" + HIDDEN.encode()), packet(b"\x03SELECT 2"))
    firsts = [answer(connection) for _ in range(4)]
    assert [f[:1] for f in firsts] == [b"\x01", b"\xff", b"\x00", b"\x01"]
    finish(env, connection, session)


def test_an_empty_command_packet_is_refused_and_the_session_goes_on(env: Env) -> None:
    connection, session = raw_session(env)
    send(connection, packet(b""))
    assert answer(connection)[:1] == b"\xff"
    finish(env, connection, session)


def test_a_command_out_of_sequence_is_refused_and_the_session_ends(env: Env) -> None:
    """A command starts at sequence id 0; the server hangs up on any other, so the front
    answers it (recorded) and ends the session, relaying nothing."""
    connection, _ = raw_session(env)
    send(connection, packet(b"\x03SELECT 42", seq=5))
    error = read_packet(connection)
    assert error[:3] == b"\xff\x84\x04" and b"sequence id 5, not 0" in error  # 1156
    with pytest.raises(ConnectionError):
        read_packet(connection)
    stack.wait_until(lambda: any(
        r["request"]["method"] == "COM_QUERY"
        and r["outcome"]["refusal"] == "packets_out_of_order" for r in env.gw.records()),
        10, "the refusal's record")
    assert "SELECT 42" not in env.server.general_log.read_text()


def test_a_statement_split_over_packets_is_decided_whole(env: Env) -> None:
    """A COM_QUERY of 16 MiB or more travels as several packets: it is read whole, the
    last packet's text with the first's, and refused whole (no SQL target reads that
    much: sql.max_bytes); nothing of it reaches the server, and the session goes on."""
    filler = "x" * (MAX_PAYLOAD - 12)
    for tail in (f"; {HIDDEN}", "; SELECT 2"):
        connection, session = raw_session(env)
        payload = f"\x03SELECT '{filler}'{tail}".encode()
        assert len(payload) > MAX_PAYLOAD  # the tail is in the second packet
        send(connection, packet(payload))
        refusal = answer(connection)
        assert refusal[:1] == b"\xff" and f"{len(payload) - 1} characters".encode() in refusal
        finish(env, connection, session)
    assert env.server.root("SELECT count(*) FROM shop.canary").stdout.strip() == "0"


def test_a_statement_over_the_limit_is_answered_then_the_session_ends(env: Env) -> None:
    connection, _ = raw_session(env)
    # A first packet of 16 MiB - 1 (more follows), then the header of a second as long.
    first = b"\x03SELECT '" + b"x" * (MAX_PAYLOAD - 9)
    send(connection, struct.pack("<I", MAX_PAYLOAD) + first,
         struct.pack("<I", MAX_PAYLOAD | (1 << 24)))
    error = read_packet(connection)
    assert error[:1] == b"\xff" and b"tollgate" in error, error
    with pytest.raises(ConnectionError):
        read_packet(connection)


def test_multi_statements_not_asked_for_stay_off(env: Env) -> None:
    """Without CLIENT_MULTI_STATEMENTS the server runs no second statement; COM_SET_OPTION,
    which would turn them on, is refused."""
    assert env.server.root(RESET).returncode == 0
    session = Session(AGENT_NAME)
    connection = connect(env.gw, multi=False)
    send(connection, packet(b"\x1b\x00\x00"))  # COM_SET_OPTION MULTI_STATEMENTS_ON
    assert answer(connection)[:1] == b"\xff"
    run(connection, session, f"SELECT 1; {HIDDEN}")
    assert session.errors and not session.errors[-1][1].startswith("tollgate")
    finish(env, connection, session)
    assert env.server.root("SELECT count(*) FROM shop.canary").stdout.strip() == "0"






def test_a_client_that_never_reads_is_held_back_not_buffered(env: Env) -> None:
    """64 MiB asked for and never read: the front stops reading the server as its client
    stops reading (the server's thread waits, writing to the net), rather than holding the
    answer in memory; other sessions go on meanwhile."""
    connection, _ = raw_session(env)
    send(connection, packet(b"\x03SELECT REPEAT('x', 1048576) AS x FROM seq_1_to_64"))

    def held_back() -> bool:
        listed = env.server.root("SELECT STATE FROM information_schema.processlist "
                                 "WHERE INFO LIKE 'SELECT REPEAT%'").stdout
        return "Writing to net" in listed

    stack.wait_until(held_back, 20, "the server writing to a front that stopped reading")
    session = play(env, ["SELECT count(*) FROM customers"])
    assert session.received[0] == 2
    connection._sock.shutdown(socket.SHUT_RDWR)
    connection.close()


def test_a_results_character_set_the_front_does_not_read_is_refused_to_everyone(
        env: Env) -> None:
    """Each spelling refused, the dba's too (the pack masks the dba): the e-mail only a
    detector finds stays masked, however the client decodes what it got."""
    for who in (AGENT_NAME, DBA_NAME):
        session = play(env, [*RESULTS_CHARSETS, "SELECT note FROM notes"], who)
        refused = [m for _, m in session.errors if "sql.unreadable" in m]
        assert len(refused) == len(RESULTS_CHARSETS), (who, session.errors)
        assert "write its answers" in refused[0]
        assert "to [REDACTED:EMAIL_ADDRESS]" in session.received, (who, session.received)
        assert not [v for v in session.received if reveals(str(v).replace("\x00", ""))]

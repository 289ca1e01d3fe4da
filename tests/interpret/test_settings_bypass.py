"""Red-team variants of run-time settings on a PostgreSQL target: an agent trying to change
what the policy saw (which schema a name resolves in, who runs the statements, how the text
is read) through a door the neutral settings open — set_config inside a CTE or a SELECT,
SET LOCAL, odd case, quoting and escapes in a setting's name, a name computed when the
statement runs — and reads with side effects dressed as catalog browsing.

Each text is read by the SQL interpreter into the exact policy input the PostgreSQL front
sends (tests/policy_corpus's `policy_input`) and decided by the embedded engine on the
default pack, as an agent's. What is refused must be refused with a reason naming the
setting; what is neutral must pass, so drivers keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extproc.policy.embedded import EmbeddedEngine
from tests.policy_corpus import policy_input

POLICIES = Path(__file__).resolve().parents[2] / "policies"
AGENT = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
SEARCH_PATH = "changing search_path is refused: table and function names would resolve"
ROLE = "changing role is refused: later statements would run as another role"
AUTHORIZATION = "changing session_authorization is refused"
UNNAMED = "set_config with a setting name computed when it runs is refused"


def decide(engine: EmbeddedEngine, text: str, method: str = "QUERY",
           labels: dict[str, str] | None = None) -> Any:
    """The default pack's decision on `text`, sent by an agent to a postgres target."""
    spec = {"identity": AGENT,
            "target": {"protocol": "postgres", "name": "shop-db", "labels": labels or {}},
            "request": {"method": method, "path": "/shop", "query": {}, "headers": {},
                        "body": text}}
    return engine.decide_now(policy_input(spec))


@pytest.mark.parametrize(("text", "says"), [
    ("WITH x AS (SELECT set_config('search_path', 'evil', false)) SELECT * FROM x",
     SEARCH_PATH),
    ("SELECT * FROM customers WHERE set_config('search_path', 'evil', true) IS NOT NULL",
     SEARCH_PATH),
    ("SELECT pg_catalog.set_config('search_path', 'evil', false)", SEARCH_PATH),
    ("SELECT * FROM pg_catalog.set_config('role', 'postgres', false)", ROLE),
    ("SELECT set_config('role', 'postgres', false)", ROLE),
    ("SELECT set_config('ROLE', 'postgres', false)", ROLE),
    ("SET LOCAL role postgres", ROLE),
    ("SET ROLE NONE", ROLE),
    ("SET SESSION AUTHORIZATION postgres", AUTHORIZATION),
    ('SET "search_PATH" = evil', SEARCH_PATH),
    ("SET SCHEMA 'evil'", SEARCH_PATH),
    ("SET search_path FROM CURRENT", SEARCH_PATH),
    ("SELECT set_config(E'search\\x5fpath', 'evil', false)", SEARCH_PATH),
    ("SELECT set_config(U&'search\\005fpath', 'evil', false)", SEARCH_PATH),
    ("SET jit = off; SET search_path = evil", SEARCH_PATH),
    ("EXPLAIN ANALYZE SELECT set_config('role', 'postgres', false)", ROLE),
    ("PREPARE p AS SELECT set_config('search_path', 'evil', false)", SEARCH_PATH),
    ("COPY (SELECT set_config('search_path', 'evil', false)) TO STDOUT", SEARCH_PATH),
    ("UPDATE customers SET name = name WHERE id = 1 "
     "AND set_config('role', 'postgres', true) IS NOT NULL", ROLE),
    ("SELECT set_config('sea' || 'rch_path', 'evil', false)", UNNAMED),
    ("SELECT set_config('search_path'::text, 'evil', false)", UNNAMED),
    ("SELECT set_config((SELECT 'role'), 'postgres', false)", UNNAMED),
    # pg_dump's shape (one row of pg_settings, named): read as the setting it names.
    ("SELECT set_config(name, 'evil', false) FROM pg_settings WHERE name = 'search_path'",
     SEARCH_PATH),
    ("SELECT set_config(name, 'postgres', false) FROM pg_catalog.pg_settings "
     "WHERE name = 'ROLE'", ROLE),
    ("SELECT set_config(name, 'evil', false) FROM pg_settings WHERE name = 'search_path' "
     "OR true", UNNAMED),
    ("SELECT set_config(name, 'evil', false) FROM pg_settings, customers "
     "WHERE name = 'jit'", UNNAMED),
    # Named, an encoding is followed by the front (or refused there if it does not
    # read it: tests/postgres/test_encodings.py); only known when it runs, the pack's.
    ("SELECT set_config('client_encoding', $1, false)", "changing client_encoding is "
                                                         "refused: its value is only known"),
    ("SELECT set_config('client_encoding', current_user, false)", "changing client_enc"),
    ("SET standard_conforming_strings = off", "changing standard_conforming_strings"),
    ("SET session_replication_role = replica", "triggers and foreign-key checks"),
    ("SELECT set_config('app.tenant_id', '2', false)", "changing app.tenant_id is refused"),
    ("SET row_security = off", "changing row_security is refused"),
    # A backslash ends the string one way and not the other: both readings are judged.
    ("SELECT set_config('jit', 'o\\', 'x'); SET search_path = evil; --', false)", SEARCH_PATH),
])
def test_a_setting_that_changes_what_the_policy_saw_is_refused_by_name(
        engine: EmbeddedEngine, text: str, says: str) -> None:
    decision = decide(engine, text)
    assert decision.action == "deny"
    assert "sql.setting" in decision.rules
    assert any(says in reason for reason in decision.reasons), decision.reasons


def test_a_prepared_setting_is_decided_on_its_text(engine: EmbeddedEngine) -> None:
    decision = decide(engine, "SELECT set_config('search_path', $1, false)", method="PARSE")
    assert (decision.action, decision.rules) == ("deny", ("sql.setting",))


def test_alter_role_set_is_configuration_not_a_session_setting(engine: EmbeddedEngine) -> None:
    decision = decide(engine, "ALTER ROLE CURRENT_USER SET search_path = evil")
    assert (decision.action, decision.rules) == ("deny", ("sql.configuration", "sql.privilege"))


# A results character set but UTF-8's: the front reads answers as UTF-8, so in utf16 (a NUL
# before each ASCII letter) or unconverted (NULL, binary: each value in its column's own
# set) no detector of the mask would match what the client reads. Refused to everyone, in
# every spelling; SET NAMES and CHARACTER SET set the results too.
@pytest.mark.parametrize("text", [
    "SET character_set_results = utf16", "SET SESSION character_set_results = 'utf32'",
    "SET @@character_set_results = ucs2", "SET @@session.character_set_results = utf16le",
    "SET @@local.character_set_results = latin1", "SET `character_set_results` = utf16",
    "SET character_set_results = NULL",  # `= binary`: a keyword sqlglot refuses to read
    "SET character_set_results = 'binary'", "SET character_set_results = DEFAULT",
    "SET character_set_results = 54", "SET character_set_results = @cs",
    "SET character_set_results = CONCAT('utf', '16')", "SET @a = 1, character_set_results = utf16",
    "SET autocommit = 1, character_set_results = utf16", "SET NAMES latin1",
    "SET NAMES 'latin1' COLLATE 'latin1_bin'", "SET CHARACTER SET latin1", "SET CHARSET ascii",
    "SET STATEMENT character_set_results = utf16 FOR SELECT note FROM scratch",
    "SET STATEMENT max_statement_time = 1, character_set_results = NULL FOR SELECT 1",
    "SET SESSION character_set_results = 'utf8mb4'; SET character_set_results = utf16",
])
def test_a_mysql_results_character_set_but_utf8_is_refused_to_everyone(
        engine: EmbeddedEngine, text: str) -> None:
    for who in (AGENT, DBA):
        decision = decide_mysql(engine, text, who)
        assert decision.action == "deny" and "sql.unreadable" in decision.rules, (who, text)
        assert any(UNREADABLE.removeprefix("SET") in r for r in decision.reasons), decision


@pytest.mark.parametrize(("text", "rule"), [
    ("SELECT pg_read_file('/etc/passwd')", "sql.server_access"),
    ("SELECT pg_ls_dir('.')", "sql.server_access"),
    ("SELECT lo_import('/etc/passwd')", "sql.server_access"),
    ("SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity", "sql.server_access"),
    ("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(i int)", "sql.server_access"),
    ("SELECT c.relname, pg_catalog.pg_read_binary_file('global/pg_control') "
     "FROM pg_catalog.pg_class c", "sql.server_access"),
    ("SELECT n.nspname, lo_unlink(16400) FROM pg_catalog.pg_namespace n", "sql.destructive"),
    ("SELECT set_config('jit', 'off', false), pg_reload_conf()", "sql.server_access"),
    # Under an expression field (a NullTest's, a CASE's, a BooleanTest's): once unread.
    ("SELECT * FROM pg_catalog.pg_class WHERE pg_read_file('/etc/passwd') IS NOT NULL",
     "sql.server_access"),
    ("SELECT 1 WHERE lo_unlink(16400) IS NULL", "sql.destructive"),
    ("SELECT CASE WHEN pg_ls_dir('.') IS NULL THEN 1 END", "sql.server_access"),
    ("SELECT 1 WHERE (pg_terminate_backend(1)) IS TRUE", "sql.server_access"),
])
def test_a_read_with_side_effects_among_catalog_reads_stays_refused(
        engine: EmbeddedEngine, text: str, rule: str) -> None:
    decision = decide(engine, text)
    assert decision.action == "deny" and rule in decision.rules


@pytest.mark.parametrize("text", [
    'SET "JIT" = off',
    "SET LOCAL jit TO 'off'",
    "SELECT set_config('JIT', 'off', false)",
    "SELECT set_config('TimeZone', 'UTC', true)",
    "SET TIME ZONE 'Europe/Paris'",
    "SET LOCAL statement_timeout = 0",
    "SET lock_timeout = '2s'; SET idle_in_transaction_session_timeout = '1min'",
    "SET NAMES 'UTF8'",
    "SET client_encoding = 'utf-8'",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "RESET search_path",
    "SET search_path TO DEFAULT",
    "RESET ROLE",
    "RESET ALL",
    "SHOW search_path",
    "SELECT current_setting('search_path'), current_setting('role')",
])
def test_a_neutral_setting_or_a_return_to_the_sessions_start_passes(
        engine: EmbeddedEngine, text: str) -> None:
    decision = decide(engine, text)
    assert (decision.action, decision.reasons) == ("allow", ())


# -- MySQL: settings that change how the server lexes later texts ----------------------------

UNREADABLE = ("SET would make the server read later SQL, or write its answers, otherwise "
              "than tollgate reads them")
DBA = {"authenticated": True, "sub": "dba-1", "groups": ["dba"]}


def decide_mysql(engine: EmbeddedEngine, text: str, who: dict[str, Any] = AGENT) -> Any:
    """The default pack's decision on `text`, a COM_QUERY's on a mysql target."""
    spec = {"identity": who, "target": {"protocol": "mysql", "name": "shop-my"},
            "request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {},
                        "body": text}}
    return engine.decide_now(policy_input(spec))


# A client character set whose characters can end in a backslash or a quote (in gbk, the
# last byte of 中 and a backslash are one character: `SELECT '中\\', ' ; DROP TABLE t; -- '`
# runs the DROP), or one only the server knows, in every spelling: refused to everyone.
@pytest.mark.parametrize("text", [
    "SET NAMES gbk", "SET NAMES 'big5'", "SET NAMES 'gbk' COLLATE 'gbk_bin'",
    "SET NAMES _utf8mb4'gbk'", "SET NAMES x'67626b'", "SET NAMES DEFAULT", "SET NAMES 28",
    "SET CHARACTER SET sjis", "SET CHARSET cp932", "SET character_set_client = gbk",
    "SET SESSION character_set_client = 'gb18030'", "SET @@character_set_client = gbk",
    "SET @@session.character_set_client = gbk", "SET @@local.character_set_client = gbk",
    "SET character_set_client := gbk", "SET `character_set_client` = gbk",
    "SET character_set_client = @cs", "SET character_set_client = (SELECT 'gbk')",
    "SET character_set_client = CONCAT('g', 'bk')", "SET character_set_client = 0x67626b",
    "SET character_set_client = 28",  # gbk_chinese_ci's id
    "SET character_set_client = DEFAULT", "SET @a = 1, character_set_client = gbk",
    "SET NAMES gbk, @a = 1", "SET GLOBAL init_connect = 'SET NAMES gbk'",
    "SET @@global.init_connect = 'SELECT 1'",
])
def test_a_mysql_setting_no_reading_follows_is_refused_to_everyone(
        engine: EmbeddedEngine, text: str) -> None:
    for who in (AGENT, DBA):
        decision = decide_mysql(engine, text, who)
        assert decision.action == "deny" and "sql.unreadable" in decision.rules, (who, text)
        assert UNREADABLE in decision.reasons


@pytest.mark.parametrize(("text", "rule"), [
    ("SET sql_mode = 'ANSI_QUOTES'", "sql.configuration"),
    ("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", "sql.configuration"),
    ("SET @@sql_mode = 'ANSI'", "sql.configuration"),
    ("SET @@session.sql_mode = 'ORACLE'", "sql.configuration"),
    ("SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')", "sql.configuration"),
    ("SET @x = 1, sql_mode = 'ANSI_QUOTES'", "sql.configuration"),
    ("SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT 1", "sql.unrecognised"),
    ("/*!40101 SET sql_mode = 'ANSI_QUOTES' */", "sql.unparseable"),
    ("SET NAMES latin1", "sql.configuration"),
    ("SET PASSWORD = PASSWORD('x')", "sql.privilege"),  # the gateway's own account's
    ("SET PASSWORD FOR gw = 'x'", "sql.unrecognised"),
])
def test_a_mysql_setting_that_changes_the_lexing_is_for_the_dba_group(
        engine: EmbeddedEngine, text: str, rule: str) -> None:
    decision = decide_mysql(engine, text)
    assert decision.action == "deny" and rule in decision.rules, decision


def test_what_the_dba_group_sets_in_sql_mode_the_readings_follow(
        engine: EmbeddedEngine) -> None:
    """sql_mode may make backslashes letters and "..." names: every text is read in each
    of those lexings, so a dba's ANSI_QUOTES leaves nothing unread."""
    assert decide_mysql(engine, "SET sql_mode = 'ANSI_QUOTES'", DBA).action == "allow"
    after = decide_mysql(engine, 'SELECT REVERSE("ssn") FROM customers', DBA)
    assert after.action == "allow" and list(after.mask["derived"]) == ["*"]
    hidden = decide_mysql(engine, "SELECT 'a\\'', \"b\\\"; DROP TABLE customers; -- \"")
    assert hidden.rules == ("sql.destructive",)


@pytest.mark.parametrize("text", [
    "SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'",
    "SET character_set_results = utf8mb4", "SET SESSION character_set_results = 'utf8'",
    "SET @@character_set_results = utf8mb3",
    "SET character_set_client = utf8mb4", "SET autocommit = 1", "SET @a = 1",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
])
def test_what_drivers_set_on_a_mysql_session_passes(engine: EmbeddedEngine, text: str) -> None:
    decision = decide_mysql(engine, text)
    assert (decision.action, decision.reasons) == ("allow", ())

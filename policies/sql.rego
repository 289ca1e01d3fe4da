# SQL (targets of protocol sql-http, postgres and mysql: the databases' own protocols): decided
# on the statements PostgreSQL's own parser (or sqlglot, for other dialects) read from
# the request — input.sql.
# Every statement counts, those nested in a CTE or under EXPLAIN ANALYZE too.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (sql_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
sql_exchange if input.target.protocol in {"sql-http", "postgres", "mysql"}

sql_exchange if input.sql != null

# A write's measured effect (input.effect) is judged whatever the target names itself:
# blast.effect must not depend on the protocol label.
sql_exchange if input.effect != null

denials contains x if {
	sql_exchange
	some x in sql_denials
}

holds contains x if {
	sql_exchange
	some x in sql_holds
}

# SQL that does not parse cannot be judged: refused (fail closed).
sql_denials contains {"rule": "sql.unparseable", "reason": sprintf("unparseable SQL: %v", [input.sql.error])} if {
	input.sql.error != null
}

# A SQL target whose request arrives without the interpreter's reading (a tollgate
# too old for this pack, a hand-built input) cannot be judged either. A database
# session's login carries SQL only for the settings its client named at startup (the
# SETs they stand for); roles.rego decides the login itself.
sql_denials contains {"rule": "sql.unread", "reason": "the request's SQL was not read (input.sql missing)"} if {
	input.target.protocol in {"sql-http", "postgres", "mysql"}
	not sql_read
	not database_login
}

sql_read if is_array(input.sql.statements)

# A request that may write (not GET, HEAD or OPTIONS) and whose body carries no SQL, or
# carries it off the target's sql.paths (a decoy the upstream does not run): a server's
# JSON write API (Datasette's POST /db/t/-/drop, /-/insert, a row's /-/delete) changes
# data with no statement to judge. Like a statement the parser cannot name, it is
# refused to all but the dba group.
sql_denials contains {
	"rule": "sql.unread_write",
	"reason": sprintf("%s %s may write and carries no SQL to judge", [request_method, request_path]),
} if {
	input.sql.unread_write == true
	not dba
}

# Rules below decide on what each statement does, its effects (extproc/interpret/sql/
# effects.py): read, write (with bounded), schema, maintenance, session, destroy,
# server, privilege, configuration, dynamic, unknown. Not on the statement's name:
# `SELECT lo_unlink(1)` destroys, `SET sql_mode = ...` reconfigures.

# Statements that lose data or schema (DROP, TRUNCATE, destructive ALTERs, CREATE OR
# REPLACE TABLE, MySQL's ENGINE=BLACKHOLE, lo_unlink), or take them away from the
# applications that use them though they stay (a table renamed or moved, row-level
# security, a restrictive or altered row policy, a dropped default, NOT NULL or
# constraint, CLUSTER, VACUUM FULL, a LOCK that blocks), only for the dba group.
sql_denials contains {"rule": "sql.destructive", "reason": reason} if {
	some s in sql_statements
	destructive_statement(s)
	not dba
	some reason in destructive_reasons(s)
}

destructive_statement(s) if "destroy" in statement_effects(s)

# Why: what applications lose, in words, where the statement takes data away from them;
# "destructive SQL: KIND" otherwise.
destructive_reasons(s) := reasons if {
	reasons := withdrawal_reasons(s)
	count(reasons) > 0
} else := {sprintf("destructive SQL: %s", [upper(s.kind)])}

withdrawal_reasons(s) := {sprintf("%s %s: %s", [statement_head(s), words[0], sprintf(words[1], [data_subject(s)])]) |
	s.kind == "alter"
	some action in array_or_empty(s.alter_actions)
	some named, words in withdrawing_actions
	named == action
} | {sprintf("%s %s: %s", [words[0], data_subject(s), sprintf(words[1], [data_subject(s)])]) |
	some key, words in withdrawing_statements
	key == statement_key(s)
}

# ALTER actions that take data away: [what it says, what applications lose].
withdrawing_actions := {
	"rename": ["RENAME", "applications reading %s by its name lose it"],
	"rename_column": ["RENAME COLUMN", "applications reading the column of %s by its name lose it"],
	"set_schema": ["SET SCHEMA", "applications reading %s in its schema lose it"],
	"enable_row_security": ["ENABLE ROW LEVEL SECURITY", "rows of %s that no policy admits disappear for every role but its owner"],
	"force_row_security": ["FORCE ROW LEVEL SECURITY", "rows of %s that no policy admits disappear for its owner too"],
	"drop_default": ["DROP DEFAULT", "applications inserting into %s without the column store NULL or fail"],
	"drop_not_null": ["DROP NOT NULL", "applications reading %s may get NULLs where they rely on a value"],
	"drop_constraint": ["DROP CONSTRAINT", "applications relying on the constraint may get rows of %s that break it"],
	"alter_column_type": ["ALTER COLUMN TYPE", "the column of %s is rewritten: applications read another type, and a USING clause may lose its values"],
	"swap_table": ["SWAP WITH", "applications reading %s read the other table's rows"],
}

# Statements that take data away whenever they destroy (the interpreter marks only
# VACUUM FULL, a LOCK from SHARE mode up, a restrictive or altered row policy).
withdrawing_statements := {
	"vacuum": ["VACUUM FULL", "applications cannot read or write %s until it is rewritten"],
	"cluster": ["CLUSTER", "applications cannot read or write %s until it is rewritten"],
	"lock": ["LOCK TABLE", "applications' writes to %s, and in ACCESS EXCLUSIVE mode their reads, wait until the transaction ends"],
	"create policy": ["CREATE POLICY AS RESTRICTIVE ON", "rows of %s it does not admit disappear for the roles it names"],
	"alter policy": ["ALTER POLICY ON", "rows of %s the changed policy does not admit disappear for the roles it names"],
}

statement_key(s) := sprintf("%s %s", [s.kind, s.object]) if is_string(s.object) else := s.kind

# "ALTER TABLE customers": a column's ALTER is ALTER TABLE's.
statement_head(s) := concat(" ", [part |
	some part in [upper(s.kind), object_word(s.object), concat(", ", statement_tables(s))]
	part != ""
])

object_word(obj) := "TABLE" if obj == "column" else := upper(replace(obj, "_", " ")) if is_string(obj) else := ""

data_subject(s) := concat(", ", statement_tables(s)) if count(statement_tables(s)) > 0 else := "it"

statement_tables(s) := [t | some t in array_or_empty(s.tables); is_string(t)]

# COPY ... TO/FROM PROGRAM runs a shell command on the database server: for no one.
sql_denials contains {"rule": "sql.copy_program", "reason": "COPY ... PROGRAM runs a command on the database server"} if {
	some s in sql_statements
	copy_program(s)
}

copy_program(s) if {
	s.kind == "copy"
	object.get(s, "program", null) != null
}

# DO runs an anonymous code block whose statements no parser here can see into: for no one.
sql_denials contains {"rule": "sql.do_block", "reason": "DO blocks run code that cannot be inspected"} if {
	some s in sql_statements
	s.kind == "do"
}

# The server's files, programs, processes and other servers (COPY to or from a file,
# pg_read_file, LOAD_FILE, xp_cmdshell, OPENROWSET, dblink, ATTACH, LOAD), only for the
# dba group (COPY ... PROGRAM for no one, above).
sql_denials contains {"rule": "sql.server_access", "reason": sprintf("%s reaches the database server's files, programs or processes", [upper(s.kind)])} if {
	some s in sql_statements
	"server" in statement_effects(s)
	not copy_program(s)
	not own_kill(s)
	not dba
}

# KILL names a connection. Through the MySQL front it names a connection id the gateway
# gave out, and the front does it only for a session of the same identity and target
# (input.mysql.kill; any other it refuses before asking): ending one's own statement,
# as the mariadb client's Ctrl-C does, is anyone's. Anywhere else (a SQL target of the
# mysql dialect, `mysql -e` in a shell) KILL names the server's own threads, any
# session's: sql.server_access.
own_kill(s) if {
	s.kind == "kill"
	input.mysql.kill.own == true
}

# Roles, grants, owners, SET ROLE (ALTER ROLE ... SUPERUSER): only for the dba group.
sql_denials contains {"rule": "sql.privilege", "reason": sprintf("%s changes roles or privileges", [upper(s.kind)])} if {
	some s in sql_statements
	"privilege" in statement_effects(s)
	not setting_statement(s)
	not dba
}

# The server's or database's settings (ALTER SYSTEM, SET GLOBAL / PERSIST, ALTER
# DATABASE ... SET, set_config, PRAGMA), and at any scope a setting that changes how the
# server lexes later texts (standard_conforming_strings, sql_mode): only for the dba group.
sql_denials contains {"rule": "sql.configuration", "reason": sprintf("%s changes the server's configuration", [upper(s.kind)])} if {
	some s in sql_statements
	"configuration" in statement_effects(s)
	not setting_statement(s)
	not dba
}

# Run-time settings (SET, SET LOCAL, set_config(...) anywhere in a statement; PostgreSQL,
# input.sql.statements[].settings): a session may change those of neutral_settings, which
# change how answers look, how long a statement may wait or run, how a transaction
# isolates — what drivers and tools send on their own (asyncpg turns jit off to read its
# types, pgAdmin sets DateStyle) —, never which objects a name resolves to, who runs the
# statements, nor how their text is read. client_encoding may be set to any encoding
# named: the PostgreSQL front reads the session in it from then on (and refuses those
# it does not read), as it does a session that logs in with it. Any other (search_path,
# role, client_encoding given as a value only known when it runs,
# standard_conforming_strings, a custom `app.tenant` a row-level policy reads, a name
# set_config only knows when it runs) is for the dba group, refused with
# the setting named and why. RESET, SET ... TO DEFAULT and RESET ALL go back to what the
# session started with, and are anyone's. SHOW and current_setting only read.
sql_denials contains {"rule": "sql.setting", "reason": setting_reason(t.name)} if {
	some s in sql_statements
	some t in statement_settings(s)
	not neutral_setting(t)
	not dba
}

neutral_settings := {
	"application_name", "bytea_output", "client_min_messages", "datestyle",
	"default_transaction_deferrable", "default_transaction_isolation",
	"default_transaction_read_only", "extra_float_digits",
	"idle_in_transaction_session_timeout", "idle_session_timeout", "intervalstyle", "jit",
	"lc_messages", "lc_monetary", "lc_numeric", "lc_time", "lock_timeout",
	"statement_timeout", "timezone", "transaction_deferrable", "transaction_isolation",
	"transaction_read_only", "xmloption",
}

neutral_setting(t) if t.reset == true

neutral_setting(t) if t.name in neutral_settings

# The client's encoding, to one named: the gateway follows it.
neutral_setting(t) if {
	t.name == "client_encoding"
	is_string(t.value)
}

# search_path emptied, or pg_catalog alone, as pg_dump and its scripts set it: tables are
# then found in pg_temp and pg_catalog only, which PostgreSQL searches first under any path
# (pg_catalog implicitly, pg_temp for tables), so a name resolves to the object the
# policy's reading, made for the default path, names, or to nothing (an error). Any other
# value (pg_temp listed, where functions are found too; a schema of the caller's) could
# make it resolve elsewhere.
neutral_setting(t) if {
	t.name == "search_path"
	t.value in {"", "pg_catalog"}
}

# Why a setting outside neutral_settings is refused, in the words of its risk.
setting_risks := {
	"search_path": "table and function names would resolve to other schemas than the ones the policy read",
	"role": "later statements would run as another role than the gateway's",
	"session_authorization": "later statements would run as another user than the gateway's",
	"client_encoding": "its value is only known when the statement runs, and the encoding it names is read from then on",
	"standard_conforming_strings": "the server would read quotes and backslashes in later SQL otherwise than the policy",
	"backslash_quote": "the server would read quotes and backslashes in later SQL otherwise than the policy",
	"session_replication_role": "triggers and foreign-key checks would stop firing",
	# Sent by pg_dump alone, as it begins a dump: the reason says who may dump.
	"synchronize_seqscans": "pg_dump sets it as it begins a dump, and dumping a database is for the dba group",
}

setting_reason(name) := "set_config with a setting name computed when it runs is refused: which setting it changes cannot be known" if {
	name == "*"
} else := sprintf("changing %s is refused: %s", [name, setting_risks[name]]) if {
	setting_risks[name]
} else := sprintf("changing %s is refused: it is not a setting a session may change (the policy's neutral_settings)", [name])

# A SET or RESET whose only effects are those of the settings it changes: sql.setting
# decides it, naming them.
setting_statement(s) if {
	s.kind in {"set", "reset"}
	count(statement_settings(s)) > 0
}

statement_settings(s) := [t | some t in s.settings; is_object(t)] if {
	is_array(s.settings)
} else := []

# SQL or code carried as a string, which no parser here reads: a function or procedure
# body, EXEC('...'), sp_executesql, query_to_xml, dblink. Only for the dba group (DO for
# no one, above).
sql_denials contains {"rule": "sql.dynamic", "reason": sprintf("%s runs code held in a string", [upper(s.kind)])} if {
	some s in sql_statements
	"dynamic" in statement_effects(s)
	s.kind != "do"
	not dba
}

# A setting after which the server reads or runs SQL otherwise than tollgate reads it
# (effect `unreadable`: a MySQL client character set whose characters can end in a
# backslash or a quote — gbk, big5, sjis, cp932, gb18030 — or one only the server knows,
# DEFAULT or an expression; init_connect, SQL run as each connection opens; a MySQL
# results character set but UTF-8's, NULL and binary too, in which the front's masking
# would read other text than the client: SET character_set_results = utf16 puts a NUL
# before every ASCII letter, and no detector matches): for no one.
# Every later statement of the session would be decided on a reading the server does not
# share: in `SELECT '中\\', ' ; DROP TABLE t; -- '` gbk reads the last byte of 中 and a
# backslash as one character, the next backslash escapes the quote, and DROP TABLE runs:
# read with backslashes as escapes or not, the text is one SELECT of two strings.
sql_denials contains {"rule": "sql.unreadable", "reason": sprintf("%s would make the server read later SQL, or write its answers, otherwise than tollgate reads them", [upper(s.kind)])} if {
	some s in sql_statements
	"unreadable" in statement_effects(s)
}

# A statement the parser could not name ("other"), of a kind this pack does not know, or
# with an effect it does not know, is refused to all but the dba group.
sql_denials contains {"rule": "sql.unrecognised", "reason": "unrecognised SQL statement"} if {
	some s in sql_statements
	unrecognised(s)
	not dba
}

unrecognised(s) if not s.kind in known_kinds

unrecognised(s) if {
	some effect in statement_effects(s)
	not effect in known_effects
}

# Every kind the SQL interpreter names (extproc/interpret/sql/), but "other".
known_kinds := {
	"select", "insert", "update", "delete", "merge", "drop", "truncate", "alter", "create",
	"grant", "revoke", "copy", "do", "call", "set", "show", "explain", "prepare", "execute",
	"transaction", "vacuum", "analyze", "lock", "notify", "comment", "reindex", "cluster",
	"refresh", "discard", "close", "reset", "load", "pragma", "attach", "kill",
}

# Every effect the SQL interpreter names, but "unknown".
known_effects := {
	"read", "write", "schema", "maintenance", "session", "destroy", "server", "privilege",
	"configuration", "dynamic", "unreadable",
}

# A read-only target takes statements that only read: no SELECT of a function that writes.
# Transaction control and neutral settings write nothing, and drivers send them on their own.
sql_denials contains {"rule": "sql.read_only", "reason": sprintf("%s on a read-only target", [upper(s.kind)])} if {
	read_only_target
	some s in sql_statements
	some effect in statement_effects(s)
	not read_only_effect(s, effect)
}

read_only_effect(_, "read") := true

# Ending one's own statement writes nothing.
read_only_effect(s, "server") if own_kill(s)

# (LISTEN and UNLISTEN only subscribe: NOTIFY, which sends, is a write.)
read_only_effect(s, "session") if s.kind in {"transaction", "close", "discard", "notify"}

read_only_effect(s, "session") if {
	s.kind in {"select", "set", "reset"}
	count(statement_settings(s)) > 0
	every t in statement_settings(s) {
		neutral_setting(t)
	}
}

# A write not bounded for sure (`bounded` true): DELETE or UPDATE without a WHERE, or
# whose WHERE cannot be shown to pick a bounded set of rows from the text alone — only an
# equality of one of its table's columns to a constant, an IN list of at most 100
# constants, an AND with such a term, an OR of such branches, WHERE CURRENT OF, or a
# LIMIT of at most 1000 where the dialect honours it (MySQL, SQLite) bound a write
# (extproc/interpret/sql/bounds.py); `IS NOT NULL`, LIKE, ranges, subqueries, functions and
# conditions true for every row do not. Also a MERGE that updates or deletes by such a
# condition, unless its source is a few constant rows; an upsert or INSERT OR REPLACE from
# a query; CALL. A human approves it first.
sql_holds contains {
	"rule": "sql.unbounded_write",
	"reason": unbounded_reason(s),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	some s in sql_statements
	unbounded_write(s)
}

unbounded_write(s) if {
	"write" in statement_effects(s)
	not s.bounded == true
}

unbounded_reason(s) := sprintf("%s without WHERE", [upper(s.kind)]) if {
	s.kind in {"delete", "update"}
	not s.has_where == true
} else := sprintf("%s may change every row", [upper(s.kind)])

# Effects no agent's statement may have (llm.rego refuses them in a model's tool calls).
refused_effects := {"destroy", "server", "privilege", "configuration", "dynamic", "unreadable"}

# A statement's effects as the interpreter read them. A statement without them (an older
# tollgate's reading, a hand-built input) has those its kind and object alone imply.
statement_effects(s) := {e | some e in s.effects} if {
	is_array(s.effects)
} else := {"dynamic"} if {
	s.kind == "create"
	s.object in routine_objects
} else := {kind_effects[s.kind]} if {
	is_string(s.kind)
	kind_effects[s.kind]
} else := {"unknown"}

# CREATE of these defines code whose body is a string, or brings code into the server.
routine_objects := {
	"function", "procedure", "operator", "cast", "aggregate", "language", "extension",
	"event_trigger", "transform",
}

kind_effects := {
	"select": "read", "show": "read", "explain": "read", "insert": "write", "update": "write",
	"delete": "write", "merge": "write", "call": "write", "drop": "destroy",
	"truncate": "destroy", "alter": "schema", "create": "schema", "comment": "schema",
	"grant": "privilege", "revoke": "privilege", "do": "dynamic", "copy": "server",
	"load": "server", "attach": "server", "kill": "server", "pragma": "configuration",
}

# The statements as objects, whatever shape input.sql arrives in.
sql_statements := [s | some s in input.sql.statements; is_object(s)] if {
	is_array(input.sql.statements)
} else := []

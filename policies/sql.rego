# SQL (targets of protocol sql-http): decided on the statements PostgreSQL's own
# parser (or sqlglot, for other dialects) read from the request — input.sql.
# Every statement counts, those nested in a CTE or under EXPLAIN ANALYZE too.
package tollgate

import rego.v1

# SQL that does not parse cannot be judged: refused (fail closed).
denials contains {"rule": "sql.unparseable", "reason": sprintf("unparseable SQL: %v", [input.sql.error])} if {
	input.sql.error != null
}

# A SQL target whose request arrives without the interpreter's reading (a tollgate
# too old for this pack, a hand-built input) cannot be judged either.
denials contains {"rule": "sql.unread", "reason": "the request's SQL was not read (input.sql missing)"} if {
	input.target.protocol == "sql-http"
	not sql_read
}

sql_read if is_array(input.sql.statements)

# A request that may write (not GET, HEAD or OPTIONS) and whose body carries no SQL, or
# carries it off the target's sql.paths (a decoy the upstream does not run): a server's
# JSON write API (Datasette's POST /db/t/-/drop, /-/insert, a row's /-/delete) changes
# data with no statement to judge. Like a statement the parser cannot name, it is
# refused to all but the dba group.
denials contains {
	"rule": "sql.unread_write",
	"reason": sprintf("%s %s may write and carries no SQL to judge", [request_method, request_path]),
} if {
	input.sql.unread_write == true
	not dba
}

# DROP, TRUNCATE and ALTERs that destroy data, only for the dba group.
denials contains {"rule": "sql.destructive", "reason": sprintf("destructive SQL: %s", [upper(s.kind)])} if {
	some s in sql_statements
	destructive_statement(s)
	not dba
}

destructive_statement(s) if s.kind in {"drop", "truncate"}

destructive_statement(s) if {
	s.kind == "alter"
	some action in array_or_empty(s.alter_actions)
	action in destructive_alter_actions
}

destructive_alter_actions := {
	"drop_column", "drop_constraint", "alter_column_type", "drop_identity",
	"drop_expression", "detach_partition", "drop_inherit", "drop_of",
}

# COPY ... TO/FROM PROGRAM runs a shell command on the database server: for no one.
denials contains {"rule": "sql.copy_program", "reason": "COPY ... PROGRAM runs a command on the database server"} if {
	some s in sql_statements
	s.kind == "copy"
	object.get(s, "program", null) != null
}

# DO runs an anonymous code block whose statements no parser here can see into.
denials contains {"rule": "sql.do_block", "reason": "DO blocks run code that cannot be inspected"} if {
	some s in sql_statements
	s.kind == "do"
}

# A function, procedure, operator, cast or aggregate is code that runs later, its body a
# string no parser here reads (a DO block by another name); an extension or language
# brings new code into the server: only for the dba group.
denials contains {"rule": "sql.routine", "reason": sprintf("CREATE %s defines code that runs later", [upper(s.object)])} if {
	some s in sql_statements
	s.kind == "create"
	s.object in routine_objects
	not dba
}

routine_objects := {
	"function", "procedure", "operator", "cast", "aggregate", "language", "extension",
	"event_trigger", "transform",
}

# Server administration through functions: ending sessions, reading server files.
denials contains {"rule": "sql.admin_function", "reason": sprintf("SQL calls %s", [f])} if {
	some s in sql_statements
	some f in array_or_empty(s.functions)
	f in admin_functions
	not dba
}

# Server administration, the server's files, and SQL run from a string (dblink,
# query_to_xml): a policy cannot see what those strings do.
admin_functions := {
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
	"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
	"pg_ls_waldir", "pg_ls_tmpdir", "pg_file_write", "pg_file_rename", "pg_file_unlink",
	"lo_import", "lo_export", "pg_promote", "set_config", "dblink", "dblink_exec",
	"dblink_connect", "dblink_connect_u", "dblink_send_query", "dblink_open",
	"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "ts_stat",
	"load_extension",
}

# ATTACH (a database file, created if missing), PRAGMA and LOAD (a shared library)
# change what the database engine itself can reach: only for the dba group.
denials contains {"rule": "sql.engine_control", "reason": sprintf("%s changes the database engine", [upper(s.kind)])} if {
	some s in sql_statements
	engine_control(s)
	not dba
}

engine_control(s) if s.kind in {"attach", "pragma", "load"}

# ALTER SYSTEM writes the server's configuration (archive_command is a shell command).
engine_control(s) if {
	s.kind == "alter"
	s.object == "system"
}

# A statement the parser could not name ("other"), or of a kind this pack does not
# know, is refused to all but the dba group.
denials contains {"rule": "sql.unrecognised", "reason": "unrecognised SQL statement"} if {
	some s in sql_statements
	not s.kind in known_kinds
	not dba
}

# Every kind the SQL interpreter names (extproc/interpret/sql.py), but "other".
known_kinds := {
	"select", "insert", "update", "delete", "merge", "drop", "truncate", "alter", "create",
	"grant", "revoke", "copy", "do", "call", "set", "show", "explain", "prepare", "execute",
	"transaction", "vacuum", "analyze", "lock", "notify", "comment", "reindex", "cluster",
	"refresh", "discard", "reset", "load", "pragma", "attach",
}

# A read-only target takes reads only, and no SELECT of a function that writes.
denials contains {"rule": "sql.read_only", "reason": sprintf("%s on a read-only target", [upper(s.kind)])} if {
	read_only_target
	some s in sql_statements
	not s.kind in {"select", "show", "explain"}
}

denials contains {"rule": "sql.read_only", "reason": sprintf("%s on a read-only target", [upper(f)])} if {
	read_only_target
	some s in sql_statements
	some f in array_or_empty(s.functions)
	f in writing_functions
}

writing_functions := {
	"nextval", "setval", "lo_create", "lo_creat", "lo_unlink", "lo_import", "lo_put",
	"lo_from_bytea", "lo_truncate", "dblink", "dblink_exec", "pg_advisory_lock",
	"pg_advisory_xact_lock", "set_config", "pg_notify",
}

# DELETE or UPDATE without WHERE touches every row: a human approves it first.
holds contains {
	"rule": "sql.unbounded_write",
	"reason": sprintf("%s without WHERE", [upper(s.kind)]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	some s in sql_statements
	unbounded_write(s)
}

# Held unless the statement has a WHERE clause for sure (has_where is true).
unbounded_write(s) if {
	s.kind in {"delete", "update"}
	not s.has_where == true
}

# The statements as objects, whatever shape input.sql arrives in.
sql_statements := [s | some s in input.sql.statements; is_object(s)] if {
	is_array(input.sql.statements)
} else := []

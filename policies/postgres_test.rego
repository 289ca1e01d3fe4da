# Unit tests of postgres.rego, and of the SQL rules on a postgres target.
package tollgate_postgres_test

import rego.v1

session(message, extra) := object.union({
	"database": "demo", "role": "agent", "application_name": "psql",
	"session_id": "s-1", "message": message, "statement_name": null,
	"transaction_status": "idle", "tls": true,
}, extra)

statement(kind, extra) := object.union({
	"kind": kind, "object": null, "text": "", "tables": ["customers"], "has_where": null,
	"functions": [], "nested": false, "program": null, "alter_actions": [],
	"effects": [], "bounded": null,
}, extra)

on_postgres(message, statements, labels) := {
	"phase": "request", "identity": {"groups": ["agents"]},
	"target": {"name": "pg", "protocol": "postgres", "labels": labels},
	"request": {"method": upper(message), "path": "/demo", "query": {}, "headers": {}, "body": ""},
	"sql": {"dialect": "postgres", "statements": statements, "multiple": false, "error": null},
	"postgres": session(message, {}),
}

test_a_select_is_allowed_masked if {
	d := data.tollgate.decision with input as on_postgres("query", [statement("select", {"effects": ["read"]})], {})
	d.action == "allow"
	d.mask.detectors == ["all"]
}

test_a_drop_is_denied if {
	d := data.tollgate.decision with input as on_postgres("query", [statement("drop", {"object": "table", "effects": ["destroy"]})], {})
	d.rules == ["sql.destructive"]
}

test_a_prepared_delete_without_where_is_held if {
	d := data.tollgate.decision with input as on_postgres("parse", [statement("delete", {"effects": ["write"], "has_where": false, "bounded": false})], {})
	d.action == "hold"
	d.rules == ["sql.unbounded_write"]
}

test_a_function_call_is_denied if {
	d := data.tollgate.decision with input as on_postgres("function_call", [], {})
	d.rules == ["postgres.function_call"]
}

test_no_statement_on_a_read_only_target_is_no_http_write if {
	d := data.tollgate.decision with input as on_postgres("query", [], {"access": "read-only"})
	d.action == "allow"
}

test_a_write_on_a_read_only_target_is_denied_by_its_statement if {
	d := data.tollgate.decision with input as on_postgres("query", [statement("insert", {"effects": ["write"]})], {"access": "read-only"})
	d.rules == ["sql.read_only"]
}

test_without_the_sql_reading_a_statement_is_denied if {
	d := data.tollgate.decision with input as object.remove(on_postgres("query", [], {}), ["sql"])
	d.rules == ["sql.unread"]
}

# Unit tests of the default pack: `make test` runs every `test_` rule here on
# the embedded engine (tests/test_policies.py).
package tollgate_test

import rego.v1

import data.tollgate

sql_post(sql) := {"phase": "request", "request": {
	"method": "POST", "path": "/sql", "query": {},
	"headers": {"content-type": "application/json"}, "body": {"sql": sql},
}}

test_select_is_allowed if {
	tollgate.decision.action == "allow" with input as sql_post("SELECT name FROM customers")
}

test_get_without_body_is_allowed if {
	d := tollgate.decision with input as {"phase": "request", "request": {
		"method": "GET", "path": "/api/customers", "query": {}, "headers": {}, "body": null,
	}}
	d.action == "allow"
	d.rules == []
}

test_drop_table_is_denied_with_reason if {
	d := tollgate.decision with input as sql_post("DROP TABLE customers")
	d.action == "deny"
	d.rules == ["sql.destructive"]
	d.reasons == ["destructive SQL: DROP"]
}

test_truncate_is_denied if {
	d := tollgate.decision with input as sql_post("truncate customers")
	d.action == "deny"
	d.reasons == ["destructive SQL: TRUNCATE"]
}

test_keyword_case_and_whitespace_do_not_matter if {
	tollgate.decision.action == "deny" with input as sql_post("SELECT 1;\n\tdRoP\ttable customers")
}

test_both_keywords_give_both_reasons if {
	d := tollgate.decision with input as sql_post("TRUNCATE a; DROP TABLE b")
	d.reasons == ["destructive SQL: DROP", "destructive SQL: TRUNCATE"]
}

test_plain_text_body_is_checked if {
	tollgate.decision.action == "deny" with input as {"phase": "request", "request": {
		"method": "POST", "path": "/query", "query": {}, "headers": {}, "body": "DROP TABLE t",
	}}
}

test_sql_query_parameter_is_checked if {
	tollgate.decision.action == "deny" with input as {"phase": "request", "request": {
		"method": "GET", "path": "/db.json", "query": {"sql": ["select 1", "drop table t"]},
		"headers": {}, "body": null,
	}}
}

test_word_inside_identifier_is_not_a_keyword if {
	tollgate.decision.action == "allow" with input as sql_post("SELECT dropped_at FROM backdrop")
}

test_response_phase_is_allowed if {
	tollgate.decision.action == "allow" with input as {"phase": "response", "request": {
		"method": "GET", "path": "/", "query": {}, "headers": {}, "body": null,
	}, "response": {"status": 200, "headers": {}, "body": null}}
}

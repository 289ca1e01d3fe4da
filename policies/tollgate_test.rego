# Unit tests of the default pack: `make test` runs every `test_` rule here on
# the embedded engine (tests/test_policies.py) and on real OPA (tests/test_opa_parity.py).
#
# Rules are named by their full path (data.tollgate.decision), not through
# `import data.tollgate`: regorus 0.13 can evaluate an imported rule defined in
# several files as undefined under `with`, which OPA does not.
package tollgate_test

import rego.v1

sql_post(sql) := {"phase": "request", "request": {
	"method": "POST", "path": "/sql", "query": {},
	"headers": {"content-type": "application/json"}, "body": {"sql": sql},
}}

test_select_is_allowed if {
	data.tollgate.decision.action == "allow" with input as sql_post("SELECT name FROM customers")
}

test_get_without_body_is_allowed if {
	d := data.tollgate.decision with input as {"phase": "request", "request": {
		"method": "GET", "path": "/api/customers", "query": {}, "headers": {}, "body": null,
	}}
	d.action == "allow"
	d.rules == []
}

test_drop_table_is_denied_with_reason if {
	d := data.tollgate.decision with input as sql_post("DROP TABLE customers")
	d.action == "deny"
	d.rules == ["sql.destructive"]
	d.reasons == ["destructive SQL: DROP"]
}

test_truncate_is_denied if {
	d := data.tollgate.decision with input as sql_post("truncate customers")
	d.action == "deny"
	d.reasons == ["destructive SQL: TRUNCATE"]
}

test_keyword_case_and_whitespace_do_not_matter if {
	data.tollgate.decision.action == "deny" with input as sql_post("SELECT 1;\n\tdRoP\ttable customers")
}

test_both_keywords_give_both_reasons if {
	d := data.tollgate.decision with input as sql_post("TRUNCATE a; DROP TABLE b")
	d.reasons == ["destructive SQL: DROP", "destructive SQL: TRUNCATE"]
}

test_plain_text_body_is_checked if {
	data.tollgate.decision.action == "deny" with input as {"phase": "request", "request": {
		"method": "POST", "path": "/query", "query": {}, "headers": {}, "body": "DROP TABLE t",
	}}
}

test_sql_query_parameter_is_checked if {
	data.tollgate.decision.action == "deny" with input as {"phase": "request", "request": {
		"method": "GET", "path": "/db.json", "query": {"sql": ["select 1", "drop table t"]},
		"headers": {}, "body": null,
	}}
}

test_word_inside_identifier_is_not_a_keyword if {
	data.tollgate.decision.action == "allow" with input as sql_post("SELECT dropped_at FROM backdrop")
}

test_response_phase_is_allowed if {
	data.tollgate.decision.action == "allow" with input as {"phase": "response", "request": {
		"method": "GET", "path": "/", "query": {}, "headers": {}, "body": null,
	}, "response": {"status": 200, "headers": {}, "body": null}}
}

test_empty_input_gets_the_default_decision if {
	data.tollgate.decision == {
		"action": "allow", "reasons": [], "rules": [],
		"mask": {"detectors": ["all"], "strategy": "redact"},
	} with input as {}
}

get_as(groups, labels) := {"phase": "request", "identity": {"authenticated": true, "groups": groups},
	"target": {"name": "t", "labels": labels}, "request": {
		"method": "GET", "path": "/api/customers", "query": {}, "headers": {}, "body": null,
	}}

test_agents_get_everything_masked if {
	d := data.tollgate.decision with input as get_as(["agents"], {})
	d.mask == {"detectors": ["all"], "strategy": "redact"}
}

test_anonymous_callers_get_everything_masked if {
	d := data.tollgate.decision with input as {"identity": {"authenticated": false}, "request": {}}
	d.mask.detectors == ["all"]
}

test_privileged_see_personal_data_but_no_credentials if {
	d := data.tollgate.decision with input as get_as(["agents", "privileged"], {})
	not "all" in d.mask.detectors
	not "us_ssn" in d.mask.detectors
	not "email" in d.mask.detectors
	"aws_secret_key" in d.mask.detectors
	"private_key" in d.mask.detectors
}

test_a_target_with_masking_off_is_not_masked if {
	d := data.tollgate.decision with input as get_as(["agents"], {"masking": "off"})
	d.action == "allow"
	d.mask == {}
}

test_a_denial_carries_no_mask if {
	d := data.tollgate.decision with input as sql_post("DROP TABLE t")
	not d.mask
}

test_sql_field_that_is_not_a_string_is_skipped_without_error if {
	data.tollgate.decision.action == "allow" with input as sql_post(42)
	data.tollgate.decision.action == "allow" with input as sql_post(null)
}

test_keyword_between_punctuation_is_denied if {
	data.tollgate.decision.action == "deny" with input as sql_post("x;DROP(t)")
}

test_same_keyword_in_two_places_gives_one_reason if {
	d := data.tollgate.decision with input as {"phase": "request", "request": {
		"method": "POST", "path": "/sql", "query": {"sql": ["DROP TABLE b"]},
		"headers": {"content-type": "application/json"}, "body": {"sql": "drop table a"},
	}}
	d.reasons == ["destructive SQL: DROP"]
}

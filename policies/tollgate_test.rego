# Unit tests of the decision assembly and masking: `make test` runs every `test_`
# rule of policies/*_test.rego on the embedded engine (tests/policy/test_policies.py) and
# on real OPA (tests/policy/test_opa_parity.py).
#
# Rules are named by their full path (data.tollgate.decision), not through
# `import data.tollgate`: regorus 0.13 can evaluate an imported rule defined in
# several files as undefined under `with`, which OPA does not.
package tollgate_test

import rego.v1

get_as(groups, labels) := {"phase": "request", "identity": {"authenticated": true, "groups": groups},
	"target": {"name": "t", "labels": labels}, "request": {
		"method": "GET", "path": "/api/customers", "query": {}, "headers": {}, "body": null,
	}}

test_get_without_body_is_allowed if {
	d := data.tollgate.decision with input as get_as(["agents"], {})
	d.action == "allow"
	d.rules == []
	d.reasons == []
}

test_response_phase_is_allowed if {
	data.tollgate.decision.action == "allow" with input as {"phase": "response", "request": {
		"method": "GET", "path": "/", "query": {}, "headers": {}, "body": null,
	}, "response": {"status": 200, "headers": {}, "body": null}}
}

mask_all := {"detectors": ["all"], "actions": data.tollgate.action_detectors, "strategy": "redact"}

test_empty_input_gets_the_default_decision if {
	data.tollgate.decision == {
		"action": "allow", "reasons": [], "rules": [],
		"mask": mask_all,
	} with input as {}
}

test_agents_get_everything_masked if {
	d := data.tollgate.decision with input as get_as(["agents"], {})
	d.mask == mask_all
}

# An agent's actions (a model's tool-call arguments) keep the addresses they need,
# never a credential, a card, an SSN or an IBAN.
test_actions_keep_addresses_and_mask_credentials_and_identifiers if {
	d := data.tollgate.decision with input as get_as(["agents"], {})
	every name in ["email", "phone", "ip_address"] {
		not name in d.mask.actions
	}
	every name in ["credit_card", "us_ssn", "iban", "aws_secret_key", "jwt", "private_key", "connection_password"] {
		name in d.mask.actions
	}
	count(d.mask.actions) == count(data.tollgate.credential_detectors) + 3
}

test_the_privileged_get_the_same_detectors_in_actions if {
	d := data.tollgate.decision with input as get_as(["agents", "privileged"], {})
	not d.mask.actions
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

delete_all := {"kind": "delete", "tables": ["t"], "has_where": false, "functions": [], "nested": false,
	"program": null, "alter_actions": [], "object": null, "text": "DELETE FROM t"}

drop_table := {"kind": "drop", "object": "table", "tables": ["t"], "has_where": null, "functions": [],
	"nested": false, "program": null, "alter_actions": [], "text": "DROP TABLE t"}

sql_input(statements) := {"phase": "request", "identity": {"groups": ["agents"]},
	"request": {"method": "POST", "path": "/sql", "query": {}, "headers": {}, "body": null},
	"sql": {"dialect": "postgres", "statements": statements, "multiple": count(statements) > 1, "error": null}}

test_a_denial_carries_no_mask if {
	d := data.tollgate.decision with input as sql_input([drop_table])
	d.action == "deny"
	not d.mask
}

test_a_hold_names_its_approvers_and_time_and_masks_what_passes if {
	d := data.tollgate.decision with input as sql_input([delete_all])
	d == {
		"action": "hold", "reasons": ["DELETE without WHERE"], "rules": ["sql.unbounded_write"],
		"approvers": ["group:dba"], "hold_seconds": 300,
		"mask": mask_all,
	}
}

test_a_rule_of_the_approvals_table_needs_two_approvers if {
	d := data.tollgate.decision with input as sql_input([delete_all])
		with data.tollgate.approvals_needed_by_rule as {"sql.unbounded_write": 2, "other": 3}
	d.action == "hold"
	d.approvals_needed == 2
}

test_a_hold_no_rule_of_the_table_holds_needs_one_approver_and_says_nothing if {
	d := data.tollgate.decision with input as sql_input([delete_all])
		with data.tollgate.approvals_needed_by_rule as {"other": 2}
	d.action == "hold"
	not d.approvals_needed
}

test_a_denial_wins_over_a_hold if {
	d := data.tollgate.decision with input as sql_input([delete_all, drop_table])
	d.action == "deny"
	d.rules == ["sql.destructive"]
	not d.approvers
}

test_only_model_answers_are_decided if {
	data.tollgate.decides_responses with input as {"target": {"protocol": "llm"}}
	not data.tollgate.decides_responses with input as {"target": {"protocol": "sql-http"}}
	not data.tollgate.decides_responses with input as {"target": {"protocol": "http"}}
	not data.tollgate.decides_responses with input as {"target": {"protocol": "k8s"}}
}

test_a_target_labelled_masking_model_adds_the_model if {
	d := data.tollgate.decision with input as get_as(["agents"], {"masking_model": "names"})
	d.mask.model == ["person"]
	d.mask.detectors == ["all"]
	d2 := data.tollgate.decision with input as get_as(["agents"], {"masking_model": "names, addresses"})
	d2.mask.model == ["person", "address"]
}

test_without_the_label_no_model if {
	d := data.tollgate.decision with input as get_as(["agents"], {})
	not d.mask.model
}

test_the_privileged_get_no_model if {
	d := data.tollgate.decision with input as get_as(["privileged"], {"masking_model": "names"})
	not d.mask.model
}

moderated_input(statements) := object.union(sql_input(statements), {"target": {
	"name": "shop", "protocol": "postgres", "environment": "prod", "labels": {"moderated": "true"},
}})

test_what_passes_on_a_moderated_target_asks_for_a_moderator if {
	data.tollgate.decision.moderated with input as moderated_input([])
	held := data.tollgate.decision with input as moderated_input([delete_all])
	held.action == "hold"
	held.moderated
}

test_a_denial_on_a_moderated_target_asks_for_nobody if {
	d := data.tollgate.decision with input as moderated_input([drop_table])
	d.action == "deny"
	not d.moderated
}

test_a_target_not_labelled_moderated_true_asks_for_nobody if {
	not data.tollgate.decision.moderated with input as sql_input([])
	not data.tollgate.decision.moderated with input as object.union(moderated_input([]),
		{"target": {"labels": {"moderated": "yes"}}})
}

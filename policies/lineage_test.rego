# Unit tests of lineage.rego, on input.sql.statements[].columns as the interpreter fills them.
package tollgate_lineage_test

import rego.v1

col(name, sources, plain) := {"name": name, "sources": sources, "plain": plain, "known": true}

select(columns) := {
	"kind": "select", "object": null, "text": "", "tables": ["customers"], "has_where": null,
	"functions": [], "nested": false, "program": null, "alter_actions": [], "settings": [],
	"effects": ["read"], "bounded": null, "columns": columns,
}

as_group(groups, target, columns) := {"phase": "request", "identity": {"groups": groups},
	"target": {"name": target, "protocol": "postgres", "labels": {}},
	"request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {}, "body": null},
	"sql": {"dialect": "postgres", "statements": [select(columns)], "multiple": false, "error": null}}

agent(columns) := as_group(["agents"], "shop", columns)

test_a_derived_protected_column_is_masked_whole if {
	d := data.tollgate.decision with input as agent([
		col("encode", ["ssn"], false), col("lower", ["sku"], false), col("email", ["email"], true)])
	d.action == "allow"
	d.mask.derived == ["encode"]
}

test_a_plain_reference_keeps_the_mask_as_before if {
	d := data.tollgate.decision with input as agent([col("ssn", ["ssn"], true), col("*", ["*"], true)])
	not d.mask.derived
	d.mask.detectors == ["all"]
}

test_a_renamed_protected_column_is_masked_whole if {
	d := data.tollgate.decision with input as agent([col("note", ["ssn"], true)])
	d.mask.derived == ["note"]
}

test_patterns_match_any_characters if {
	d := data.tollgate.decision with input as agent([
		col("a", ["customer_email"], false), col("b", ["card_no"], false), col("c", ["cardinal"], false),
		col("d", ["nickname"], false)])
	d.mask.derived == ["a", "b", "c"]
}

test_a_whole_row_or_an_unknown_lineage_is_derived if {
	d := data.tollgate.decision with input as agent([
		col("to_jsonb", ["*"], false),
		{"name": "*", "sources": [], "plain": false, "known": false},
		{"name": null, "sources": ["email"], "plain": false, "known": true}])
	d.mask.derived == ["*", "to_jsonb"]
}

test_the_privileged_see_derived_personal_data_not_credentials if {
	d := data.tollgate.decision with input as as_group(["privileged"], "shop", [
		col("encode", ["ssn"], false), col("md5", ["password_hash"], false)])
	d.mask.derived == ["md5"]
}

test_a_target_that_refuses_derived_values_refuses_the_statement if {
	d := data.tollgate.decision with input as object.union(agent([col("encode", ["ssn"], false)]),
		{"target": {"name": "shop", "protocol": "postgres", "labels": {"derived_values": "refuse"}}})
	d.action == "deny"
	d.rules == ["sql.derived"]
	d.reasons == ["result column encode is computed from a protected column (ssn): derived values of protected columns are refused on this target"]
}

test_protected_columns_are_per_target if {
	d := data.tollgate.decision with input as agent([col("encode", ["ssn"], false), col("upper", ["nickname"], false)])
		with data.tollgate.protected_columns as {"*": ["ssn"], "shop": ["nickname"]}
	d.mask.derived == ["upper"]
}

test_an_unmasked_target_has_no_derived_mask if {
	d := data.tollgate.decision with input as object.union(agent([col("encode", ["ssn"], false)]),
		{"target": {"name": "shop", "protocol": "postgres", "labels": {"masking": "off"}}})
	d.mask == {}
}

test_protected_patterns_match_whole_names if {
	data.tollgate.protected_name("SSN") with input as agent([])
	not data.tollgate.protected_name("ssn2") with input as agent([])
	data.tollgate.protected_name("card_holder") with input as agent([])
	not data.tollgate.protected_name("discard") with input as agent([])
	data.tollgate.protected_name("work_email_address") with input as agent([])
	data.tollgate.protected_name("private_key_pem") with input as agent([])
	not data.tollgate.protected_name("balance") with input as agent([])
}

# What a statement stores (input.sql.statements[].stores) is refused when a later read of
# it would escape the mask: a protected column's values renamed or transformed.
stored(kind, stores) := object.union(select([]), {"kind": kind, "columns": null, "stores": stores})

as_stores(groups, kind, stores) := object.union(as_group(groups, "shop", []),
	{"sql": {"dialect": "mysql", "statements": [stored(kind, stores)], "multiple": false, "error": null}})

test_a_protected_value_stored_under_another_name_is_refused if {
	d := data.tollgate.decision with input as as_stores(["agents"], "select", [col("@v", ["ssn"], true)])
	d.action == "deny"
	d.rules == ["sql.derived_store"]
	d.reasons == ["SELECT stores @v computed from a protected column (ssn): read back later, it would escape the mask"]
}

test_a_derived_value_stored_even_under_its_own_name_is_refused if {
	d := data.tollgate.decision with input as as_stores(["agents"], "update", [col("email", ["email"], false)])
	d.rules == ["sql.derived_store"]
	n := data.tollgate.decision with input as as_stores(["agents"], "insert", [col(null, ["*"], true)])
	n.reasons == ["INSERT stores a value computed from a protected column (*): read back later, it would escape the mask"]
}

test_a_plain_copy_under_its_own_name_and_unprotected_stores_pass if {
	every stores in [[col("ssn", ["ssn"], true)], [col("*", ["*"], true)], [col("note", ["sku"], true)], [col("@n", [], false)]] {
		data.tollgate.decision.action == "allow" with input as as_stores(["agents"], "create", stores)
	}
}

test_stores_bind_neither_the_dba_group_nor_an_unmasked_target if {
	data.tollgate.decision.action == "allow" with input as as_stores(["dba"], "create", [col("note", ["ssn"], true)])
	i := object.union(as_stores(["agents"], "create", [col("note", ["ssn"], true)]),
		{"target": {"name": "shop", "protocol": "postgres", "labels": {"masking": "off"}}})
	data.tollgate.decision.action == "allow" with input as i
}

test_the_privileged_may_store_personal_data_not_credentials if {
	data.tollgate.decision.action == "allow" with input as as_stores(["privileged"], "create", [col("note", ["ssn"], true)])
	d := data.tollgate.decision with input as as_stores(["privileged"], "create", [col("h", ["password_hash"], false)])
	d.rules == ["sql.derived_store"]
}

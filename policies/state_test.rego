# Unit tests of state.rego: what an agent may not change of the database's own state.
package tollgate_state_test

import rego.v1

query(text, groups) := {
	"phase": "request", "identity": {"groups": groups},
	"target": {"name": "pg", "protocol": "postgres", "environment": "dev", "labels": {}},
	"request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {}, "body": text},
	"sql": {"dialect": "postgres", "statements": [statement(text)], "multiple": false, "error": null},
}

statement(text) := object.union({
	"kind": "select", "object": null, "text": text, "tables": [], "has_where": null,
	"functions": [], "nested": false, "program": null, "alter_actions": [], "settings": [],
	"effects": ["read"], "bounded": null,
}, state_shapes[text])

state_shapes := {
	"ALTER TABLE o ADD CONSTRAINT c FOREIGN KEY (c) REFERENCES customers ON DELETE CASCADE": {"kind": "alter", "object": "table", "tables": ["o"], "alter_actions": ["add_constraint"], "effects": ["schema"]},
	"ANALYZE customers": {"kind": "analyze", "tables": ["customers"], "effects": ["maintenance"]},
	"SELECT * FROM pg_catalog.pg_stats": {"tables": ["pg_catalog.pg_stats"]},
	"SELECT pg_try_advisory_lock_shared(1)": {"functions": ["pg_try_advisory_lock_shared"], "effects": ["read", "write"]},
	"SELECT setval('ids', 1)": {"functions": ["setval"], "effects": ["read", "write"]},
	"SELECT pg_advisory_unlock_all()": {"functions": ["pg_advisory_unlock_all"], "effects": ["read", "write"]},
}

test_an_agent_cannot_change_the_databases_state if {
	every text in [t | some t, _ in state_shapes; t != "SELECT pg_advisory_unlock_all()"] {
		d := data.tollgate.decision with input as query(text, ["agents"])
		d.action == "deny"
		"sql.state" in d.rules
	}
}

test_unlocking_ones_own_locks_passes if {
	d := data.tollgate.decision with input as query("SELECT pg_advisory_unlock_all()", ["agents"])
	not "sql.state" in d.rules
}

test_a_dba_may if {
	d := data.tollgate.decision with input as query("ANALYZE customers", ["dba"])
	not "sql.state" in d.rules
}

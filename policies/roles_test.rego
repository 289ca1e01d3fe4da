# Unit tests of roles.rego: the role a database session's login names.
package tollgate_roles_test

import rego.v1

login(protocol, groups, roles) := {
	"phase": "request", "identity": {"groups": groups},
	"target": {"name": "shop-db", "protocol": protocol, "environment": "dev", "labels": {}},
	"request": {"method": "CONNECT", "path": "/shop", "query": {}, "headers": {}, "body": null},
	"sql": null,
	"postgres": object.get({"postgres": {
		"database": "shop", "role": "agent", "application_name": "psql", "session_id": "s-1",
		"message": "connect", "statement_name": null, "transaction_status": "idle",
		"tls": true, "roles": roles, "database_role": null,
	}}, protocol, null),
	"mysql": object.get({"mysql": {
		"database": "shop", "user": "agent", "session_id": "s-1", "command": "connect",
		"tls": true, "roles": roles, "database_role": null,
	}}, protocol, null),
}

test_an_agent_logs_in_as_the_agents_role if {
	d := data.tollgate.decision with input as login("postgres", ["agents"], ["tollgate_agent", "tollgate_dba"])
	d.action == "allow"
	d.database_role == "tollgate_agent"
}

test_a_dba_logs_in_as_the_dbas_role_first if {
	d := data.tollgate.decision with input as login("mysql", ["agents", "dba"], ["tollgate_agent", "tollgate_dba"])
	d.database_role == "tollgate_dba"
}

test_a_role_the_target_does_not_list_is_never_named if {
	d := data.tollgate.decision with input as login("postgres", ["dba", "agents"], ["tollgate_agent"])
	d.database_role == "tollgate_agent"
}

test_no_role_for_the_identitys_groups_refuses_the_login if {
	d := data.tollgate.decision with input as login("postgres", ["sales"], ["tollgate_agent"])
	d.action == "deny"
	d.rules == ["database.role"]
}

test_a_target_without_roles_gets_none if {
	d := data.tollgate.decision with input as login("mysql", ["agents"], [])
	d.action == "allow"
	not d.database_role
}

test_a_statement_carries_no_role if {
	input_ := object.union(login("postgres", ["agents"], ["tollgate_agent"]), {"postgres": {"message": "query"}})
	d := data.tollgate.decision with input as input_
	not d.database_role
}

test_a_target_of_its_own_maps_its_groups if {
	d := data.tollgate.decision with input as login("postgres", ["agents"], ["orders_reader"])
		with data.tollgate.database_roles as {"*": [], "shop-db": [{"group": "agents", "role": "orders_reader"}]}
	d.database_role == "orders_reader"
}

test_an_agents_statements_may_run_five_minutes if {
	d := data.tollgate.decision with input as login("postgres", ["agents"], ["tollgate_agent"])
	d.statement_timeout_seconds == 300
}

test_a_dbas_statements_run_as_long_as_the_server_lets_them if {
	d := data.tollgate.decision with input as login("mysql", ["agents", "dba"], ["tollgate_agent", "tollgate_dba"])
	not d.statement_timeout_seconds
}

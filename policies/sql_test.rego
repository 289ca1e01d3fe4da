# Unit tests of sql.rego, on input.sql as the SQL interpreter fills it.
package tollgate_sql_test

import rego.v1

stmt(kind, extra) := object.union({
	"kind": kind, "object": null, "text": "", "tables": ["customers"], "has_where": null,
	"functions": [], "nested": false, "program": null, "alter_actions": [],
}, extra)

as_group(groups, statements) := {"phase": "request", "identity": {"groups": groups},
	"target": {"name": "db", "protocol": "sql-http", "labels": {}},
	"request": {"method": "POST", "path": "/sql", "query": {}, "headers": {}, "body": null},
	"sql": {"dialect": "postgres", "statements": statements, "multiple": count(statements) > 1, "error": null}}

agent(statements) := as_group(["agents"], statements)

test_select_is_allowed if {
	data.tollgate.decision.action == "allow" with input as agent([stmt("select", {})])
}

test_no_statement_is_allowed if {
	data.tollgate.decision.action == "allow" with input as agent([])
}

test_drop_is_denied_for_agents if {
	d := data.tollgate.decision with input as agent([stmt("drop", {"object": "table"})])
	d.action == "deny"
	d.rules == ["sql.destructive"]
	d.reasons == ["destructive SQL: DROP"]
}

test_truncate_is_denied_for_agents if {
	d := data.tollgate.decision with input as agent([stmt("truncate", {})])
	d.reasons == ["destructive SQL: TRUNCATE"]
}

test_drop_and_truncate_are_allowed_for_dba if {
	d := data.tollgate.decision with input as as_group(["dba"], [stmt("drop", {}), stmt("truncate", {})])
	d.action == "allow"
}

test_destructive_alter_is_denied if {
	d := data.tollgate.decision with input as agent([stmt("alter", {"alter_actions": ["add_column", "drop_column"], "effects": ["destroy", "schema"]})])
	d.reasons == ["destructive SQL: ALTER"]
}

# Schema changes that take data away from applications (issue 45): refused like other
# destructive DDL, with what applications lose in words.
test_a_rename_says_what_applications_lose if {
	d := data.tollgate.decision with input as agent([stmt("alter", {"object": "table", "alter_actions": ["rename"], "effects": ["destroy", "schema"]})])
	d.rules == ["sql.destructive"]
	d.reasons == ["ALTER TABLE customers RENAME: applications reading customers by its name lose it"]
}

test_each_withdrawing_action_gives_its_reason if {
	d := data.tollgate.decision with input as agent([stmt("alter", {"object": "table", "alter_actions": ["drop_column", "drop_default", "drop_not_null"], "effects": ["destroy", "schema"]})])
	d.reasons == [
		"ALTER TABLE customers DROP DEFAULT: applications inserting into customers without the column store NULL or fail",
		"ALTER TABLE customers DROP NOT NULL: applications reading customers may get NULLs where they rely on a value",
	]
}

test_a_column_rename_is_an_alter_table if {
	d := data.tollgate.decision with input as agent([stmt("alter", {"object": "column", "alter_actions": ["rename_column"], "effects": ["destroy", "schema"]})])
	d.reasons == ["ALTER TABLE customers RENAME COLUMN: applications reading the column of customers by its name lose it"]
}

test_statements_that_block_or_hide_rows_say_so if {
	d := data.tollgate.decision with input as agent([
		stmt("vacuum", {"effects": ["destroy", "maintenance"]}),
		stmt("create", {"object": "policy", "effects": ["destroy", "schema"]}),
	])
	d.reasons == [
		"CREATE POLICY AS RESTRICTIVE ON customers: rows of customers it does not admit disappear for the roles it names",
		"VACUUM FULL customers: applications cannot read or write customers until it is rewritten",
	]
}

test_a_withdrawal_without_tables_names_it if {
	d := data.tollgate.decision with input as agent([stmt("alter", {"object": "schema", "tables": [], "alter_actions": ["rename"], "effects": ["destroy", "schema"]})])
	d.reasons == ["ALTER SCHEMA RENAME: applications reading it by its name lose it"]
}

test_a_withdrawal_is_allowed_for_dba if {
	d := data.tollgate.decision with input as as_group(["dba"], [stmt("alter", {"object": "table", "alter_actions": ["set_schema"], "effects": ["destroy", "schema"]})])
	d.action == "allow"
}

test_a_withdrawing_action_the_interpreter_did_not_mark_is_not_refused if {
	# An index rename: the interpreter gives it no destroy effect, and the words alone refuse nothing.
	data.tollgate.decision.action == "allow" with input as agent([stmt("alter", {"object": "index", "alter_actions": ["rename"], "effects": ["schema"]})])
}

test_additive_alter_is_allowed if {
	data.tollgate.decision.action == "allow" with input as agent([stmt("alter", {"alter_actions": ["add_column"]})])
}

test_a_stacked_drop_after_a_select_is_denied if {
	d := data.tollgate.decision with input as agent([stmt("select", {}), stmt("drop", {})])
	d.action == "deny"
}

test_delete_without_where_is_held_for_dba_approval if {
	d := data.tollgate.decision with input as agent([stmt("delete", {"has_where": false})])
	d.action == "hold"
	d.approvers == ["group:dba"]
	d.reasons == ["DELETE without WHERE"]
}

test_update_without_where_is_held if {
	d := data.tollgate.decision with input as agent([stmt("update", {"has_where": false})])
	d.reasons == ["UPDATE without WHERE"]
}

test_delete_with_where_is_allowed if {
	data.tollgate.decision.action == "allow" with input as agent([stmt("delete", {"has_where": true, "effects": ["write"], "bounded": true})])
}

test_a_delete_nested_in_a_cte_is_held if {
	d := data.tollgate.decision with input as agent([
		stmt("select", {}), stmt("delete", {"has_where": false, "nested": true}),
	])
	d.action == "hold"
}

test_copy_program_is_denied_even_for_dba if {
	d := data.tollgate.decision with input as as_group(["dba"], [stmt("copy", {"program": "rm -rf /"})])
	d.rules == ["sql.copy_program"]
}

test_copy_to_stdout_is_allowed if {
	data.tollgate.decision.action == "allow" with input as agent([stmt("copy", {"effects": ["read"]})])
}

test_do_block_is_denied if {
	d := data.tollgate.decision with input as as_group(["dba"], [stmt("do", {})])
	d.rules == ["sql.do_block"]
}

test_server_access_is_for_dba_only if {
	s := stmt("select", {"functions": ["pg_read_file"], "effects": ["read", "server"]})
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.server_access"]
	d.reasons == ["SELECT reaches the database server's files, programs or processes"]
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [s])
}

# KILL of a server thread reaches any session; through the MySQL front (input.mysql.kill)
# it names one of the agent's own connections, which the front checked: anyone's.
test_kill_is_for_dba_only_unless_the_mysql_front_made_it_ones_own if {
	s := stmt("kill", {"object": "query", "effects": ["server"]})
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.server_access"]
	d.reasons == ["KILL reaches the database server's files, programs or processes"]
	own := object.union(agent([s]), {"target": {"protocol": "mysql"}, "mysql": {"kill": {"connection_id": 7, "scope": "query", "own": true}}})
	data.tollgate.decision.action == "allow" with input as own
	read_only := object.union(own, {"target": {"labels": {"access": "read-only"}}})
	data.tollgate.decision.action == "allow" with input as read_only
	other := object.union(agent([s, stmt("select", {"functions": ["load_file"], "effects": ["read", "server"]})]), {"mysql": {"kill": {"connection_id": 7, "scope": "query", "own": true}}})
	d2 := data.tollgate.decision with input as other
	d2.reasons == ["SELECT reaches the database server's files, programs or processes"]
}

test_privilege_changes_are_for_dba_only if {
	s := stmt("alter", {"object": "role", "effects": ["privilege", "schema"]})
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.privilege"]
	d.reasons == ["ALTER changes roles or privileges"]
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [s])
}

test_an_effect_the_pack_does_not_know_is_unrecognised if {
	every effects in [["unknown"], ["read", "teleport"], [5]] {
		d := data.tollgate.decision with input as agent([stmt("select", {"effects": effects})])
		d.rules == ["sql.unrecognised"]
	}
}

test_the_effects_decide_not_the_kind if {
	d := data.tollgate.decision with input as agent([stmt("select", {"functions": ["lo_unlink"], "effects": ["destroy", "read"]})])
	d.reasons == ["destructive SQL: SELECT"]
	data.tollgate.decision.action == "allow" with input as agent([stmt("drop", {"effects": ["read"]})])
}

test_a_write_that_may_change_every_row_is_held if {
	every kind in ["merge", "insert", "call"] {
		d := data.tollgate.decision with input as agent([stmt(kind, {"effects": ["write"], "bounded": false})])
		d.rules == ["sql.unbounded_write"]
		d.reasons == [sprintf("%s may change every row", [upper(kind)])]
	}
	d := data.tollgate.decision with input as agent([stmt("delete", {"has_where": true, "effects": ["write"], "bounded": false})])
	d.reasons == ["DELETE may change every row"]
}

# A WHERE is judged by whether the interpreter could show it bounded (bounds.py), never by
# its having one: `WHERE id IS NOT NULL` is read bounded false, and held.
test_a_where_that_bounds_nothing_is_held_whatever_its_shape if {
	every bounded in [false, null] {
		d := data.tollgate.decision with input as agent([stmt("update", {"has_where": true, "effects": ["write"], "bounded": bounded})])
		d.action == "hold"
		d.reasons == ["UPDATE may change every row"]
	}
	data.tollgate.decision.action == "allow" with input as agent([stmt("update", {"has_where": true, "effects": ["write"], "bounded": true})])
}

test_ordinary_functions_are_allowed if {
	data.tollgate.decision.action == "allow" with input as agent([stmt("select", {"functions": ["count", "now"]})])
}

test_unparseable_sql_is_denied if {
	i := object.union(agent([]), {"sql": {"dialect": "postgres", "statements": [], "multiple": false, "error": "syntax error at or near \"DR\""}})
	d := data.tollgate.decision with input as i
	d.rules == ["sql.unparseable"]
	d.reasons == ["unparseable SQL: syntax error at or near \"DR\""]
}

test_unrecognised_statements_are_denied if {
	d := data.tollgate.decision with input as agent([stmt("other", {})])
	d.rules == ["sql.unrecognised"]
}

test_a_read_only_target_takes_reads_only if {
	i := object.union(agent([stmt("insert", {})]), {"target": {"labels": {"access": "read-only"}}})
	d := data.tollgate.decision with input as i
	d.rules == ["sql.read_only"]
	r := object.union(agent([stmt("select", {})]), {"target": {"labels": {"access": "read-only"}}})
	data.tollgate.decision.action == "allow" with input as r
}

test_attach_pragma_and_load_read_without_effects_are_for_dba_only if {
	every kind_rule in [["attach", "sql.server_access"], ["pragma", "sql.configuration"], ["load", "sql.server_access"]] {
		d := data.tollgate.decision with input as agent([stmt(kind_rule[0], {})])
		d.rules == [kind_rule[1]]
		data.tollgate.decision.action == "allow" with input as as_group(["dba"], [stmt(kind_rule[0], {})])
	}
}

test_a_sql_target_without_the_interpreters_reading_is_denied if {
	every sql in [null, "DROP TABLE t", {"statements": "DROP"}, {"error": null}] {
		d := data.tollgate.decision with input as object.union(object.remove(agent([]), ["sql"]), {"sql": sql})
		d.rules == ["sql.unread"]
	}
}

test_an_error_of_any_type_is_unparseable if {
	d := data.tollgate.decision with input as object.union(agent([]), {"sql": {"statements": [], "error": 7}})
	d.rules == ["sql.unparseable"]
	d.reasons == ["unparseable SQL: 7"]
}

test_a_kind_the_pack_does_not_know_is_unrecognised if {
	every kind in ["other", "teleport", 5] {
		d := data.tollgate.decision with input as agent([stmt(kind, {})])
		d.rules == ["sql.unrecognised"]
	}
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [stmt("other", {})])
}

test_a_delete_not_known_to_have_a_where_is_held if {
	every where in [null, "yes", true] {
		data.tollgate.decision.action == "hold" with input as agent([stmt("delete", {"has_where": where})])
	}
	every bounded in [null, "yes", false] {
		data.tollgate.decision.action == "hold" with input as agent([stmt("delete", {"effects": ["write"], "bounded": bounded})])
	}
	data.tollgate.decision.action == "allow" with input as agent([stmt("delete", {"effects": ["write"], "bounded": true})])
}

test_routines_and_extensions_are_only_for_dba if {
	every object in ["function", "procedure", "operator", "cast", "aggregate", "extension", "language"] {
		d := data.tollgate.decision with input as agent([stmt("create", {"object": object})])
		d.rules == ["sql.dynamic"]
		d.reasons == ["CREATE runs code held in a string"]
		data.tollgate.decision.action == "allow" with input as as_group(["dba"], [stmt("create", {"object": object})])
	}
	data.tollgate.decision.action == "allow" with input as agent([stmt("create", {"object": "trigger"})])
}

test_sql_run_from_a_string_is_for_dba_only if {
	s := stmt("execute", {"effects": ["dynamic"]})
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.dynamic"]
	d.reasons == ["EXECUTE runs code held in a string"]
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [s])
}

test_configuration_is_for_dba_only if {
	s := stmt("set", {"effects": ["configuration", "session"]})
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.configuration"]
	d.reasons == ["SET changes the server's configuration"]
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [s])
}

test_a_select_of_a_writing_function_is_refused_on_a_read_only_target if {
	s := stmt("select", {"functions": ["count", "setval"], "effects": ["read", "write"], "bounded": true})
	read_only := object.union(agent([s]), {"target": {"labels": {"access": "read-only"}}})
	d := data.tollgate.decision with input as read_only
	"sql.read_only" in d.rules
	"SELECT on a read-only target" in d.reasons
}

test_a_write_without_sql_to_a_read_only_sql_target_is_refused if {
	post := object.union(agent([]), {"target": {"labels": {"access": "read-only"}}})
	d := data.tollgate.decision with input as post
	d.rules == ["http.read_only"]
	d.reasons == ["POST on a read-only target"]
}

# A Datasette JSON write API call: a POST whose body holds no SQL.
unread_write(groups, method, path) := object.union(as_group(groups, []), {
	"request": {"method": method, "path": path, "body": {"confirm": true}},
	"sql": {"unread_write": true},
})

test_a_write_without_sql_is_refused_naming_method_and_path if {
	every method in ["POST", "PUT", "PATCH", "DELETE"] {
		d := data.tollgate.decision with input as unread_write(["agents"], method, "/shop/customers/-/drop")
		d.rules == ["sql.unread_write"]
		d.reasons == [sprintf("%s /shop/customers/-/drop may write and carries no SQL to judge", [method])]
	}
}

test_a_write_without_sql_is_for_dba_only if {
	data.tollgate.decision.action == "allow" with input as unread_write(["dba"], "POST", "/shop/customers/-/drop")
	data.tollgate.decision.action == "deny" with input as unread_write([], "POST", "/shop/customers/-/drop")
}

test_a_write_without_sql_names_what_the_request_lacks if {
	no_request := object.remove(unread_write(["agents"], "POST", "/x"), ["request"])
	d := data.tollgate.decision with input as no_request
	d.reasons == ["(no method) (no path) may write and carries no SQL to judge"]
}

test_an_unread_write_with_sql_in_its_query_is_refused_on_a_read_only_target_to_dba_too if {
	i := object.union(unread_write(["dba"], "POST", "/shop/customers/-/drop"), {
		"target": {"labels": {"access": "read-only"}},
		"sql": {"statements": [stmt("select", {})]},
	})
	d := data.tollgate.decision with input as i
	d.rules == ["http.read_only"]
}

setting(name, value) := {"name": name, "value": value, "reset": false}

setting_stmt(kind, settings, effects) := stmt(kind, {"settings": settings, "effects": effects})

test_a_neutral_setting_passes_and_writes_nothing_on_a_read_only_target if {
	jit := setting_stmt("select", [setting("jit", "off")], ["read", "session"])
	data.tollgate.decision.action == "allow" with input as agent([jit])
	read_only := object.union(agent([jit]), {"target": {"labels": {"access": "read-only"}}})
	data.tollgate.decision.action == "allow" with input as read_only
}

test_a_setting_that_changes_what_the_policy_saw_is_refused_by_name if {
	s := setting_stmt("set", [setting("search_path", "evil")], ["session"])
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.setting"]
	d.reasons == ["changing search_path is refused: table and function names would resolve to other schemas than the ones the policy read"]
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [s])
}

# pg_dump empties search_path: names then resolve to what the default path gives them,
# or to nothing. Any other value, pg_temp first or a list, stays refused.
test_search_path_may_be_emptied_or_pg_catalog_alone if {
	every value in ["", "pg_catalog"] {
		s := setting_stmt("select", [setting("search_path", value)], ["read", "session"])
		data.tollgate.decision.action == "allow" with input as agent([s])
	}
	every value in ["pg_temp", "pg_catalog, pg_temp", "PG_CATALOG", "public", " "] {
		s := setting_stmt("select", [setting("search_path", value)], ["read", "session"])
		d := data.tollgate.decision with input as agent([s])
		d.rules == ["sql.setting"]
	}
	many := setting_stmt("set", [setting("search_path", null)], ["session"])
	data.tollgate.decision.action == "deny" with input as agent([many])
}

test_a_dump_is_refused_saying_who_may_dump if {
	s := setting_stmt("set", [setting("synchronize_seqscans", "off")], ["session"])
	d := data.tollgate.decision with input as agent([s])
	d.reasons == ["changing synchronize_seqscans is refused: pg_dump sets it as it begins a dump, and dumping a database is for the dba group"]
	data.tollgate.decision.action == "allow" with input as as_group(["dba"], [s])
}

test_set_role_is_named_once_not_as_a_privilege_too if {
	s := setting_stmt("set", [setting("role", "postgres")], ["privilege", "session"])
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.setting"]
	d.reasons == ["changing role is refused: later statements would run as another role than the gateway's"]
}

test_client_encoding_passes_when_it_is_named if {
	utf8 := setting_stmt("set", [setting("client_encoding", "UTF-8")], ["session"])
	data.tollgate.decision.action == "allow" with input as agent([utf8])
	latin9 := setting_stmt("set", [setting("client_encoding", "LATIN9")], ["session"])
	data.tollgate.decision.action == "allow" with input as agent([latin9])
	unknown := setting_stmt("set", [setting("client_encoding", null)], ["configuration", "session"])
	d := data.tollgate.decision with input as agent([unknown])
	d.action == "deny"
	d.rules == ["sql.setting"]
}

test_a_reset_goes_back_to_the_sessions_start if {
	s := setting_stmt("reset", [{"name": "role", "value": null, "reset": true}], ["session"])
	data.tollgate.decision.action == "allow" with input as agent([s])
}

test_an_unnamed_or_unknown_setting_is_refused if {
	unnamed := setting_stmt("select", [setting("*", "x")], ["configuration", "read", "session"])
	d := data.tollgate.decision with input as agent([unnamed])
	d.rules == ["sql.configuration", "sql.setting"]
	"set_config with a setting name computed when it runs is refused: which setting it changes cannot be known" in d.reasons
	custom := setting_stmt("select", [setting("app.tenant", "2")], ["read", "session"])
	e := data.tollgate.decision with input as agent([custom])
	e.reasons == ["changing app.tenant is refused: it is not a setting a session may change (the policy's neutral_settings)"]
}

test_settings_of_an_odd_shape_are_no_settings if {
	s := stmt("set", {"settings": "search_path", "effects": ["session"]})
	data.tollgate.decision.action == "allow" with input as agent([s])
}

# A setting after which the server reads SQL otherwise than tollgate (a MySQL client
# character set such as gbk, init_connect) is refused to everyone, the dba group too.
test_an_unreadable_setting_is_refused_to_everyone if {
	s := stmt("set", {"effects": ["configuration", "session", "unreadable"]})
	d := data.tollgate.decision with input as agent([s])
	d.rules == ["sql.configuration", "sql.unreadable"]
	"SET would make the server read later SQL, or write its answers, otherwise than tollgate reads them" in d.reasons
	dba := data.tollgate.decision with input as as_group(["dba"], [s])
	dba.rules == ["sql.unreadable"]
}

# Unit tests of blast.rego: writes held by the planner's estimate of what they touch.
package tollgate_blast_test

import rego.v1

write(extra) := object.union({
	"table": "public.customers", "operation": "delete", "rows": 4, "table_rows": 4,
	"counted": true, "statistics": "fresh",
}, extra)

statement(kind, estimate) := {
	"kind": kind, "object": null, "text": "", "tables": ["customers"], "has_where": true,
	"functions": [], "nested": false, "program": null, "alter_actions": [],
	"effects": ["write"], "bounded": true, "estimate": estimate,
}

on_postgres(statements, target) := {
	"phase": "request", "identity": {"groups": ["agents"]},
	"target": {"name": target, "protocol": "postgres", "labels": {}},
	"request": {"method": "QUERY", "path": "/demo", "query": {}, "headers": {}, "body": ""},
	"sql": {"dialect": "postgres", "statements": statements, "multiple": false, "error": null},
	"postgres": {"message": "query", "transaction_status": "idle"},
}

decided(writes) := d if {
	d := data.tollgate.decision with input as on_postgres([statement("delete", {"writes": writes, "unavailable": null})], "pg")
}

test_deleting_every_row_of_a_small_table_is_held if {
	d := decided([write({})])
	d.action == "hold"
	d.rules == ["blast.rows"]
	d.reasons == ["DELETE touches about 4 of 4 rows of public.customers"]
	d.approvers == ["group:dba"]
}

test_one_row_is_never_held_for_its_share if {
	d := decided([write({"rows": 1, "table_rows": 2})])
	d.action == "allow"
}

test_a_small_share_of_a_big_table_passes if {
	d := decided([write({"rows": 40, "table_rows": 1000000, "counted": false})])
	d.action == "allow"
}

test_more_rows_than_the_limit_is_held_whatever_the_share if {
	d := decided([write({"rows": 1001, "table_rows": 1000000, "counted": false})])
	d.rules == ["blast.rows"]
}

test_an_insert_into_a_small_table_is_held_by_rows_only if {
	allowed := decided([write({"operation": "insert", "rows": 50, "table_rows": 0})])
	allowed.action == "allow"
	held := decided([write({"operation": "insert", "rows": 5000, "table_rows": 0})])
	held.reasons == ["INSERT touches about 5000 of 0 rows of public.customers"]
}

test_stale_statistics_on_a_big_table_count_a_share_of_it if {
	d := decided([write({"rows": 1, "table_rows": 1000000, "counted": false, "statistics": "stale"})])
	d.reasons == ["DELETE touches about 1 of 1000000 rows of public.customers (the table's statistics are stale: the estimate may be far off; ANALYZE public.customers)"]
	fresh := decided([write({"rows": 1, "table_rows": 1000000, "counted": false})])
	fresh.action == "allow"
	smaller := decided([write({"rows": 1, "table_rows": 50000, "counted": false, "statistics": "none"})])
	smaller.action == "allow"
}

test_a_table_the_plan_wrote_unnamed_is_held_by_rows_only if {
	d := decided([write({"rows": 5000, "table_rows": null, "counted": false, "statistics": "unknown"})])
	d.reasons == ["DELETE touches about 5000 rows of public.customers"]
	small := decided([write({"rows": 50, "table_rows": null, "counted": false, "statistics": "unknown"})])
	small.action == "allow"
}

test_a_target_has_limits_of_its_own if {
	d := data.tollgate.decision with input as on_postgres([statement("delete", {"writes": [write({"rows": 5000, "table_rows": 1000000, "counted": false})], "unavailable": null})], "warehouse")
		with data.tollgate.blast_limits as {"*": {"rows": 1000, "percent": 20, "floor": 1, "stale_percent": 1}, "warehouse": {"rows": 100000}}
	d.action == "allow"
}

test_an_estimate_that_could_not_be_had_is_held if {
	d := data.tollgate.decision with input as on_postgres([statement("update", {"writes": [], "unavailable": "the transaction has failed"})], "pg")
	d.action == "hold"
	d.rules == ["blast.unknown"]
	d.reasons == ["UPDATE: how many rows it touches is not known: the transaction has failed"]
}

test_a_statement_without_an_estimate_is_left_to_sql_rego if {
	d := data.tollgate.decision with input as on_postgres([object.remove(statement("delete", {}), ["estimate"])], "pg")
	d.action == "allow"
}

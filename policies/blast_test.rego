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

# The measured effect (input.effect): the second decision on a write that ran, rolled back.

measured(tables, written) := d if {
	one := write({"rows": 1, "table_rows": 100})
	base := on_postgres([statement("delete", {"writes": [one], "unavailable": null})], "pg")
	d := data.tollgate.decision with input as object.union(base, {"effect": {
		"measured": true, "tables": tables, "written": written, "unavailable": null,
		"rows": 0,
	}})
}

changed(table, deleted, table_rows) := {
	"table": table, "inserted": 0, "updated": 0, "deleted": deleted, "table_rows": table_rows,
}

test_a_cascade_that_empties_a_table_is_held_naming_where_it_came_from if {
	d := measured([changed("public.orders", 1, 100), changed("public.customers", 4, 4)], ["public.orders"])
	d.action == "hold"
	d.rules == ["blast.effect"]
	d.reasons == ["would delete 4 rows of public.customers (through a cascade, trigger or view from public.orders)"]
	d.approvers == ["group:dba"]
}

test_the_statements_own_table_over_its_share_is_held if {
	d := measured([changed("public.orders", 40, 100)], ["public.orders"])
	d.rules == ["blast.effect"]
	d.reasons == ["would delete 40 rows of public.orders (a table of 100 rows)"]
}

test_a_measured_effect_within_the_limits_passes if {
	d := measured([changed("public.orders", 1, 100), changed("public.audit", 0, 0)], ["public.orders"])
	d.action == "allow"
}

test_rows_over_the_limit_are_held_whatever_the_table_size if {
	d := measured([{"table": "public.log", "inserted": 1001, "updated": 0, "deleted": 0, "table_rows": null}], [])
	d.rules == ["blast.effect"]
	d.reasons == ["would insert 1001 rows of public.log"]
}

test_a_write_over_the_large_limit_needs_two_approvers if {
	d := measured([changed("public.ledger", 19990, 20000)], ["public.ledger"])
	d.action == "hold"
	d.rules == ["blast.effect", "blast.large_effect"]
	d.approvals_needed == 2
	"would change 19990 rows of public.ledger: a write this large needs two approvers" in d.reasons
}

test_a_write_at_the_large_limit_needs_one_approver if {
	d := measured([{"table": "public.log", "inserted": 10000, "updated": 0, "deleted": 0, "table_rows": null}], [])
	d.rules == ["blast.effect"]
	not d.approvals_needed
}

test_an_update_and_a_delete_are_both_named if {
	t := {"table": "public.t", "inserted": 0, "updated": 3, "deleted": 2, "table_rows": 10}
	d := measured([t], ["public.t"])
	d.reasons == ["would update 3 rows and delete 2 rows of public.t (a table of 10 rows)"]
}

test_an_effect_not_measured_waits_for_a_dba if {
	base := on_postgres([statement("delete", {"writes": [write({"rows": 1, "table_rows": 100})], "unavailable": null})], "pg")
	d := data.tollgate.decision with input as object.union(base, {"effect": {
		"measured": false, "tables": [], "rows": 0, "written": [],
		"unavailable": "COPY ... FROM takes its rows from the client",
	}})
	d.action == "hold"
	d.rules == ["blast.effect_unknown"]
	d.reasons == ["what the write changes cannot be measured: COPY ... FROM takes its rows from the client"]
}

test_an_effect_of_the_wrong_shape_holds_nothing_and_errs_nowhere if {
	base := on_postgres([statement("delete", {"writes": [write({"rows": 1, "table_rows": 100})], "unavailable": null})], "pg")
	d := data.tollgate.decision with input as object.union(base, {"effect": {"measured": true, "tables": ["x", 3]}})
	d.action == "allow"
}

# Split writes: the hour's rows this identity changed of the table (input.activity).

split(before, deleted, table_rows) := d if {
	one := write({"rows": 1, "table_rows": table_rows})
	base := on_postgres([statement("delete", {"writes": [one], "unavailable": null})], "pg")
	d := data.tollgate.decision with input as object.union(base, {
		"effect": {
			"measured": true, "tables": [changed("public.customers", deleted, table_rows)],
			"written": ["public.customers"], "unavailable": null, "rows": deleted,
		},
		"activity": {"status": "known", "identity": {"hour": {"deleted": {
			"pg:public.customers": before, "pg:public.other": 50,
			"other-db:public.customers": 50,
		}}}},
	})
}

test_a_table_emptied_one_row_at_a_time_is_held_on_the_sum if {
	d := split(2, 1, 2)
	d.action == "hold"
	d.rules == ["blast.split"]
	d.reasons == ["would delete 1 rows of public.customers, after 2 rows of it this identity deleted within the hour (a table of about 4 rows)"]
}

test_a_first_small_write_and_a_large_tables_trickle_pass if {
	split(0, 1, 4).action == "allow"
	split(1, 1, 100).action == "allow"
}

test_rows_summed_over_the_limit_are_held if {
	d := split(1000, 1, 100000)
	d.rules == ["blast.split"]
}

test_without_activity_a_write_is_judged_alone if {
	one := write({"rows": 1, "table_rows": 4})
	base := on_postgres([statement("delete", {"writes": [one], "unavailable": null})], "pg")
	d := data.tollgate.decision with input as object.union(base, {"effect": {
		"measured": true, "tables": [changed("public.customers", 1, 4)],
		"written": ["public.customers"], "unavailable": null, "rows": 1,
	}})
	d.action == "allow"
}

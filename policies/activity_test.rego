# Unit tests of activity.rego, on input.activity as the activity tracker fills it
# (extproc/activity/tracker.py).
package tollgate_activity_test

import rego.v1

# The limits these tests are written for (limits.rego's as shipped), pinned in every
# decision they take: an operator who changes limits.rego changes what the pack does, not
# whether its tests pass (tollgate runs them before a revision serves).
pinned_limits := {
	"personal_values_per_hour": 500,
	"personal_detectors": [
		"credit_card", "email", "iban", "phone", "us_ssn", "uk_nino", "in_aadhaar", "de_tax_id",
		"nl_bsn", "es_nif", "it_fiscal_code", "fr_nir", "pl_pesel", "se_personnummer", "dk_cpr",
		"ca_sin", "au_tfn", "fi_hetu", "br_cpf", "ch_ahv", "us_itin", "mx_curp", "jp_my_number",
		"kr_rrn", "cn_resident_id", "sg_nric", "za_id", "tr_kimlik", "il_id", "uk_nhs", "br_cnpj",
		"au_medicare", "au_abn", "in_pan", "au_acn", "th_tnin", "it_vat", "sg_uen", "ng_nin",
		"us_passport", "in_passport", "it_passport", "it_identity_card", "in_voter",
		"us_driver_license", "it_driver_license", "us_bank_number", "in_vehicle_registration",
	],
	"personal_values_per_hour_per_target": 10000,
	"personal_values_per_hour_per_group": 5000,
	"refusals_per_minute": 10,
	"token_addresses": 1,
	"token_environments": 1,
}

# One window's counts (W), with `extra` replacing some.
window(extra) := object.union({
	"exchanges": 0, "refusals": 0, "holds": 0, "masked": {}, "masked_total": 0, "items": 0,
	"bytes": 0, "administrative": 0, "targets": 0, "environments": 0, "addresses": 0,
}, extra)

seen(addresses, environments) := {"targets": ["orders-sql"], "environments": environments, "addresses": addresses}

# An identity's or a token's counts: `hour` and `minute` as given (the day as the hour).
counts(hour, minute, addresses, environments) := {
	"minute": window(minute), "hour": window(hour), "day": window(hour),
	"seen": seen(addresses, environments),
}

quiet := counts({}, {}, ["10.0.0.7"], ["prod"])

masked(detectors) := counts({"masked": detectors, "masked_total": sum([n | some n in detectors; is_number(n)])}, {}, ["10.0.0.7"], ["prod"])

activity(status, identity, token) := {
	"status": status, "aggregated": false, "exchange": {"administrative": false},
	"identity": identity, "token": token,
}

known(identity) := activity("known", identity, quiet)

stmt(kind, effects) := {
	"kind": kind, "object": null, "text": "", "tables": ["customers"], "has_where": null,
	"functions": [], "nested": false, "program": null, "alter_actions": [], "effects": effects,
	"bounded": null,
}

select := stmt("select", ["read"])

insert := object.union(stmt("insert", ["write"]), {"bounded": true})

drop := object.union(stmt("drop", ["destroy"]), {"object": "table"})

who(groups) := {
	"authenticated": true, "sub": "svc-autogen", "iss": "https://login.example.com",
	"aud": ["tollgate"], "email": null, "groups": groups, "jti": "7f3c",
}

# A request to the sql-http target orders-sql, by `groups`, with `statements`, from
# 10.0.0.7, with `activity`.
sql_as(groups, statements, act) := {
	"phase": "request", "identity": who(groups),
	"target": {"name": "orders-sql", "protocol": "sql-http", "environment": "prod", "labels": {}},
	"request": {"method": "POST", "path": "/sql", "query": {}, "headers": {}, "body": null},
	"response": null,
	"sql": {"dialect": "postgres", "statements": statements, "multiple": count(statements) > 1,
		"error": null, "unread_write": false},
	"k8s": null, "llm": null, "mcp": null, "postgres": null, "approval": null,
	"source": {"address": "10.0.0.7"}, "activity": act,
}

agent_sql(statements, act) := sql_as(["agents"], statements, act)

# A request of `method` to the http target crm.
http_as(method, labels, act) := {
	"phase": "request", "identity": who(["agents"]),
	"target": {"name": "crm", "protocol": "http", "environment": "prod", "labels": labels},
	"request": {"method": method, "path": "/api/customers", "query": {}, "headers": {}, "body": null},
	"response": null, "sql": null, "k8s": null, "llm": null, "mcp": null, "postgres": null,
	"approval": null, "source": {"address": "10.0.0.7"}, "activity": act,
}

with_fields(x, fields) := object.union(x, fields)

# The alerts of the decision on `x`: [] when it carries none (undefined when there is no
# decision).
alerts_of(x) := a if {
	d := data.tollgate.decision with input as x
	is_string(d.action)
	a := object.get(d, "alerts", [])
}

over := known(masked({"email": 300, "phone": 201}))

at_limit := known(masked({"email": 300, "phone": 200}))

volume_reason := "501 personal values masked in the last hour (the limit is 500): reads wait for approval"

unknown_reason := "activity is unknown (the shared counts are stale: the store does not answer): reads are refused until it answers again; try again later"

# -- activity.personal_volume -----------------------------------------------------------------

test_reads_past_the_hours_personal_values_are_held_for_a_dba if {
	d := data.tollgate.decision with input as agent_sql([select], over) with data.tollgate.limits as pinned_limits
	d.action == "hold"
	d.rules == ["activity.personal_volume"]
	d.reasons == [volume_reason]
	d.approvers == ["group:dba"]
	d.hold_seconds == 300
}

test_reads_up_to_the_limit_are_allowed if {
	d := data.tollgate.decision with input as agent_sql([select], at_limit) with data.tollgate.limits as pinned_limits
	d.action == "allow"
	object.get(d, "alerts", []) == []
}

test_values_of_other_detectors_are_not_personal if {
	many := known(masked({"ip_address": 5000, "jwt": 40, "email": 10}))
	data.tollgate.decision.action == "allow" with input as agent_sql([select], many) with data.tollgate.limits as pinned_limits
}

test_every_personal_detector_counts if {
	some_of_each := known(masked({"credit_card": 101, "email": 100, "iban": 100, "phone": 100, "us_ssn": 100}))
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as agent_sql([select], some_of_each) with data.tollgate.limits as pinned_limits
}

test_a_count_that_is_no_number_counts_nothing if {
	odd := known(masked({"email": "9999", "phone": null}))
	data.tollgate.decision.action == "allow" with input as agent_sql([select], odd) with data.tollgate.limits as pinned_limits
}

test_writes_past_the_limit_are_not_held if {
	data.tollgate.decision.action == "allow" with input as agent_sql([insert], over) with data.tollgate.limits as pinned_limits
}

test_a_write_stacked_on_a_read_is_held if {
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as agent_sql([select, insert], over) with data.tollgate.limits as pinned_limits
}

test_a_read_that_also_writes_is_held if {
	nextval := stmt("select", ["read", "write"])
	d := data.tollgate.decision with input as agent_sql([object.union(nextval, {"bounded": true})], over) with data.tollgate.limits as pinned_limits
	d.rules == ["activity.personal_volume"]
}

test_a_denial_wins_over_the_hold if {
	d := data.tollgate.decision with input as agent_sql([select, drop], over) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.rules == ["sql.destructive"]
}

test_postgres_reads_are_held if {
	pg := with_fields(agent_sql([select], over), {
		"target": {"name": "shop", "protocol": "postgres", "environment": "prod", "labels": {}},
		"request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {}, "body": "SELECT 1"},
		"source": null,
	})
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as pg with data.tollgate.limits as pinned_limits
}

test_http_gets_are_held if {
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as http_as("GET", {}, over) with data.tollgate.limits as pinned_limits
}

test_a_sql_http_get_without_sql_is_a_read if {
	table_json := with_fields(agent_sql([], over), {"request": {
		"method": "GET", "path": "/db/customers.json", "query": {}, "headers": {}, "body": null,
	}})
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as table_json with data.tollgate.limits as pinned_limits
}

test_http_writes_are_not_held if {
	data.tollgate.decision.action == "allow" with input as http_as("POST", {}, over) with data.tollgate.limits as pinned_limits
}

test_targets_with_masking_off_are_not_held if {
	data.tollgate.decision.action == "allow" with input as http_as("GET", {"masking": "off"}, over) with data.tollgate.limits as pinned_limits
}

test_other_protocols_are_not_held if {
	k8s := with_fields(http_as("GET", {}, over), {"target": {"name": "cluster", "protocol": "k8s", "environment": "prod", "labels": {}}})
	held := {h.rule | some h in data.tollgate.live_holds} with input as k8s with data.tollgate.limits as pinned_limits
	not "activity.personal_volume" in held
}

test_the_privileged_are_not_held if {
	data.tollgate.decision.action == "allow" with input as sql_as(["privileged"], [select], over) with data.tollgate.limits as pinned_limits
}

test_dba_reads_are_held_too if {
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as sql_as(["dba"], [select], over) with data.tollgate.limits as pinned_limits
}

# Responses of these targets are not decided (decides_responses); where one is, it holds
# as its request did, and the request's approval covers it.
test_a_response_holds_as_its_request_did if {
	answered := with_fields(http_as("GET", {}, over), {"phase": "response", "response": {"status": 200, "headers": {}, "body": null}})
	data.tollgate.decision.rules == ["activity.personal_volume"] with input as answered with data.tollgate.limits as pinned_limits
	not data.tollgate.decides_responses with input as {"target": answered.target} with data.tollgate.limits as pinned_limits
}

test_identities_counted_together_are_held_on_their_common_count if {
	together := with_fields(over, {"aggregated": true})
	d := data.tollgate.decision with input as agent_sql([select], together) with data.tollgate.limits as pinned_limits
	d.reasons == ["501 personal values masked in the last hour for identities beyond the tracking bound, counted together (the limit is 500): reads wait for approval"]
}

test_reads_are_refused_with_503_while_activity_is_unknown if {
	d := data.tollgate.decision with input as agent_sql([select], activity("unknown", quiet, quiet)) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.status == 503
	d.rules == ["activity.personal_volume"]
	d.reasons == [unknown_reason]
	not d.approvers
}

test_an_unknown_count_past_the_limit_says_it_is_unknown if {
	stale := with_fields(over, {"status": "unknown"})
	data.tollgate.decision.reasons == [unknown_reason] with input as agent_sql([select], stale) with data.tollgate.limits as pinned_limits
}

test_writes_and_the_privileged_pass_while_activity_is_unknown if {
	unknown := activity("unknown", quiet, quiet)
	data.tollgate.decision.action == "allow" with input as agent_sql([insert], unknown) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as sql_as(["privileged"], [select], unknown) with data.tollgate.limits as pinned_limits
}

test_nothing_is_held_when_activity_is_off_or_missing if {
	off := {"status": "off", "aggregated": false, "exchange": {"administrative": false}, "identity": null, "token": null}
	data.tollgate.decision.action == "allow" with input as agent_sql([select], off) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as agent_sql([select], null) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as object.remove(agent_sql([select], over), ["activity"]) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as with_fields(agent_sql([select], over), {"activity": {"status": "off"}}) with data.tollgate.limits as pinned_limits
}

test_the_limit_and_the_detectors_are_data if {
	d := data.tollgate.decision with input as agent_sql([select], known(masked({"email": 11})))
		with data.tollgate.limits as {"personal_values_per_hour": 10, "personal_detectors": ["email"]}
	d.reasons == ["11 personal values masked in the last hour (the limit is 10): reads wait for approval"]
	data.tollgate.decision.action == "allow" with input as agent_sql([select], known(masked({"email": 11})))
		with data.tollgate.limits as {"personal_values_per_hour": 10, "personal_detectors": ["phone"]}
}

test_a_limit_left_out_turns_the_rule_off if {
	data.tollgate.decision.action == "allow" with input as agent_sql([select], over)
		with data.tollgate.limits as {"personal_detectors": ["email", "phone"]}
	data.tollgate.decision.action == "allow" with input as agent_sql([select], activity("unknown", quiet, quiet))
		with data.tollgate.limits as {"personal_values_per_hour": "500"}
}

# -- activity.admin_action --------------------------------------------------------------------

administrative(act) := with_fields(act, {"exchange": {"administrative": true}})

test_an_agents_administrative_action_alerts if {
	d := data.tollgate.decision with input as agent_sql([drop], administrative(known(quiet))) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.alerts == [{
		"rule": "activity.admin_action", "severity": "warning",
		"message": "agent svc-autogen made an administrative request on orders-sql (prod): refused",
	}]
}

test_the_alert_says_whether_the_action_was_held_or_allowed if {
	held := data.tollgate.decision with input as agent_sql([select], administrative(over)) with data.tollgate.limits as pinned_limits
	held.alerts[0].message == "agent svc-autogen made an administrative request on orders-sql (prod): held for approval"
	allowed := data.tollgate.decision with input as agent_sql([select], administrative(known(quiet))) with data.tollgate.limits as pinned_limits
	allowed.action == "allow"
	allowed.alerts[0].message == "agent svc-autogen made an administrative request on orders-sql (prod): allowed"
}

test_an_administrative_action_alerts_on_unknown_counts_too if {
	stale := administrative(activity("unknown", quiet, quiet))
	d := data.tollgate.decision with input as agent_sql([drop], stale) with data.tollgate.limits as pinned_limits
	[a.rule | some a in d.alerts] == ["activity.admin_action"]
}

test_an_agent_without_a_subject_is_named_anonymous if {
	x := agent_sql([drop], administrative(known(quiet)))
	nameless := with_fields(x, {"identity": with_fields(x.identity, {"sub": null})})
	d := data.tollgate.decision with input as nameless with data.tollgate.limits as pinned_limits
	d.alerts[0].message == "agent anonymous made an administrative request on orders-sql (prod): refused"
}

test_killing_ones_own_statement_through_the_mysql_front_does_not_alert if {
	kill := stmt("kill", ["server"])
	own := with_fields(agent_sql([kill], administrative(known(quiet))), {"mysql": {"kill": {"connection_id": 7, "scope": "query", "own": true}}})
	d := data.tollgate.decision with input as own with data.tollgate.limits as pinned_limits
	d.action == "allow"
	object.get(d, "alerts", []) == []
}

test_a_dbas_administrative_action_does_not_alert if {
	d := data.tollgate.decision with input as sql_as(["dba"], [drop], administrative(known(quiet))) with data.tollgate.limits as pinned_limits
	d.action == "allow"
	object.get(d, "alerts", []) == []
}

test_an_agents_other_actions_do_not_alert if {
	alerts_of(agent_sql([drop], known(quiet))) == [] with data.tollgate.limits as pinned_limits
}

test_no_administrative_alert_when_activity_is_off_or_missing if {
	off := {"status": "off", "aggregated": false, "exchange": {"administrative": true}, "identity": null, "token": null}
	alerts_of(agent_sql([drop], off)) == [] with data.tollgate.limits as pinned_limits
	alerts_of(object.remove(agent_sql([drop], known(quiet)), ["activity"])) == [] with data.tollgate.limits as pinned_limits
}

# -- activity.token_reuse ---------------------------------------------------------------------

token_from(addresses, environments) := counts({}, {}, addresses, environments)

addresses_reason := "this token has been used from 2 source addresses within a day (the limit is 1): it may have been copied"

environments_reason := "this token has been used in 2 environments within a day (the limit is 1): it may have been copied"

test_a_token_seen_from_another_address_is_refused_and_alerted if {
	copied := activity("known", quiet, token_from(["10.9.9.9"], ["prod"]))
	d := data.tollgate.decision with input as agent_sql([select], copied) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.rules == ["activity.token_reuse"]
	d.reasons == [addresses_reason]
	d.alerts == [{
		"rule": "activity.token_reuse", "severity": "critical",
		"message": "token 7f3c of svc-autogen used from 2 source addresses within a day: it may have been copied",
	}]
}

test_a_token_seen_from_its_own_address_only_passes if {
	d := data.tollgate.decision with input as agent_sql([select], activity("known", quiet, token_from(["10.0.0.7"], ["prod"]))) with data.tollgate.limits as pinned_limits
	d.action == "allow"
	object.get(d, "alerts", []) == []
}

test_a_tokens_first_use_passes if {
	data.tollgate.decision.action == "allow" with input as agent_sql([select], activity("known", quiet, token_from([], []))) with data.tollgate.limits as pinned_limits
}

test_addresses_seen_count_without_this_exchanges if {
	no_source := with_fields(agent_sql([select], activity("known", quiet, token_from(["10.0.0.7", "10.9.9.9"], ["prod"]))), {"source": null})
	data.tollgate.decision.reasons == [addresses_reason] with input as no_source with data.tollgate.limits as pinned_limits
	one := with_fields(agent_sql([select], activity("known", quiet, token_from(["10.0.0.7"], ["prod"]))), {"source": null})
	data.tollgate.decision.action == "allow" with input as one with data.tollgate.limits as pinned_limits
}

test_a_token_seen_in_another_environment_is_refused_and_alerted if {
	d := data.tollgate.decision with input as agent_sql([select], activity("known", quiet, token_from(["10.0.0.7"], ["dev"]))) with data.tollgate.limits as pinned_limits
	d.reasons == [environments_reason]
	d.alerts == [{
		"rule": "activity.token_reuse", "severity": "critical",
		"message": "token 7f3c of svc-autogen used in 2 environments (dev, prod) within a day: it may have been copied",
	}]
}

test_both_kinds_of_reuse_are_named if {
	d := data.tollgate.decision with input as agent_sql([select], activity("known", quiet, token_from(["10.9.9.9"], ["dev"]))) with data.tollgate.limits as pinned_limits
	d.reasons == [addresses_reason, environments_reason]
	count(d.alerts) == 2
}

test_no_token_no_reuse if {
	d := data.tollgate.decision with input as agent_sql([select], activity("known", token_from(["10.9.9.9"], ["dev"]), null)) with data.tollgate.limits as pinned_limits
	d.action == "allow"
}

test_reuse_is_refused_on_unknown_counts_too if {
	stale := activity("unknown", quiet, token_from(["10.9.9.9"], ["prod"]))
	d := data.tollgate.decision with input as agent_sql([insert], stale) with data.tollgate.limits as pinned_limits
	d.rules == ["activity.token_reuse"]
}

test_no_reuse_when_activity_is_off_or_missing if {
	off := activity("off", null, token_from(["10.9.9.9"], ["dev"]))
	data.tollgate.decision.action == "allow" with input as agent_sql([select], off) with data.tollgate.limits as pinned_limits
	copied := agent_sql([select], activity("known", quiet, token_from(["10.9.9.9"], ["dev"])))
	data.tollgate.decision.action == "allow" with input as object.remove(copied, ["activity"]) with data.tollgate.limits as pinned_limits
}

test_the_token_limits_are_data if {
	two := {"token_addresses": 2, "token_environments": 2}
	data.tollgate.decision.action == "allow" with input as agent_sql([select], activity("known", quiet, token_from(["10.9.9.9"], ["dev"])))
		with data.tollgate.limits as two
	d := data.tollgate.decision with input as agent_sql([select], activity("known", quiet, token_from(["10.9.9.9", "10.9.9.8"], ["dev"])))
		with data.tollgate.limits as two
	d.reasons == ["this token has been used from 3 source addresses within a day (the limit is 2): it may have been copied"]
	data.tollgate.decision.action == "allow" with input as agent_sql([select], activity("known", quiet, token_from(["10.9.9.9"], ["dev"])))
		with data.tollgate.limits as {}
}

# -- activity.refusal_burst -------------------------------------------------------------------

refused_before(n) := known(counts({}, {"refusals": n}, ["10.0.0.7"], ["prod"]))

burst_alert := {
	"rule": "activity.refusal_burst", "severity": "warning",
	"message": "svc-autogen was refused 10 times within a minute, this time by sql.destructive (the limit is 10)",
}

test_a_refusal_that_makes_a_burst_alerts if {
	d := data.tollgate.decision with input as agent_sql([drop], refused_before(9)) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.alerts == [burst_alert]
}

test_refusals_past_the_limit_alert_too if {
	d := data.tollgate.decision with input as agent_sql([drop], refused_before(30)) with data.tollgate.limits as pinned_limits
	[a.rule | some a in d.alerts] == ["activity.refusal_burst"]
}

test_refusals_short_of_the_limit_do_not_alert if {
	alerts_of(agent_sql([drop], refused_before(8))) == [] with data.tollgate.limits as pinned_limits
}

test_an_exchange_not_refused_does_not_alert if {
	alerts_of(agent_sql([select], refused_before(30))) == [] with data.tollgate.limits as pinned_limits
	held := agent_sql([stmt("delete", ["write"])], refused_before(30))
	d := data.tollgate.decision with input as held with data.tollgate.limits as pinned_limits
	d.action == "hold"
	object.get(d, "alerts", []) == []
}

test_no_burst_alert_on_unknown_off_missing_or_aggregated_counts if {
	burst := refused_before(30)
	alerts_of(agent_sql([drop], with_fields(burst, {"status": "unknown"}))) == [] with data.tollgate.limits as pinned_limits
	alerts_of(agent_sql([drop], with_fields(burst, {"status": "off"}))) == [] with data.tollgate.limits as pinned_limits
	alerts_of(agent_sql([drop], with_fields(burst, {"aggregated": true}))) == [] with data.tollgate.limits as pinned_limits
	alerts_of(agent_sql([drop], null)) == [] with data.tollgate.limits as pinned_limits
}

test_the_burst_limit_is_data if {
	d := data.tollgate.decision with input as agent_sql([drop], refused_before(2)) with data.tollgate.limits as {"refusals_per_minute": 3}
	d.alerts[0].message == "svc-autogen was refused 3 times within a minute, this time by sql.destructive (the limit is 3)"
	alerts_of(agent_sql([drop], refused_before(30))) == [] with data.tollgate.limits as {}
}

# -- alerts in the decision ---------------------------------------------------------------------

test_alerts_come_sorted_in_every_decision if {
	# A copied token's refusal that is an agent's administrative action and makes a burst.
	everything := administrative(activity("known", counts({}, {"refusals": 9}, [], []), token_from(["10.9.9.9"], ["prod"])))
	d := data.tollgate.decision with input as agent_sql([drop], everything) with data.tollgate.limits as pinned_limits
	[a.rule | some a in d.alerts] == ["activity.admin_action", "activity.refusal_burst", "activity.token_reuse"]
	d.alerts == sort(d.alerts)
}

test_a_decision_without_alerts_has_no_alerts_key if {
	d := data.tollgate.decision with input as {} with data.tollgate.limits as pinned_limits
	not "alerts" in object.keys(d)
}

test_other_files_may_add_alerts if {
	extra := {{"rule": "custom.b", "severity": "info", "message": "b"}, {"rule": "custom.a", "severity": "critical", "message": "a"}}
	d := data.tollgate.decision with input as {} with data.tollgate.alerts as extra with data.tollgate.limits as pinned_limits
	d.alerts == [
		{"rule": "custom.a", "severity": "critical", "message": "a"},
		{"rule": "custom.b", "severity": "info", "message": "b"},
	]
}

# -- input.activity.live: the counts every process wrote, read at the decision ------------------

# `live` as activity/live.py builds it: the identity's refusals in the minute, the token's
# values seen, the personal values masked on orders-sql and for group agents in the hour.
live(refusals, addresses, environments, target_masked, group_masked) := {
	"status": "known",
	"identity": {"minute": {"refusals": refusals}},
	"token": {"seen": {"addresses": addresses, "environments": environments}},
	"target": {"hour": {"masked": target_masked}},
	"groups": {"agents": {"hour": {"masked": group_masked}}},
}

live_unknown := {"status": "unknown", "identity": null, "token": null, "target": null, "groups": {}}

# The synced view knows nothing yet (another process made the counts, within its sync).
with_live(l) := object.union(known(quiet), {"live": l})

test_a_burst_spread_over_processes_alerts_on_the_live_count if {
	d := data.tollgate.decision with input as agent_sql([drop], with_live(live(9, [], [], {}, {}))) with data.tollgate.limits as pinned_limits
	d.alerts == [burst_alert]
	alerts_of(agent_sql([drop], with_live(live(8, [], [], {}, {})))) == [] with data.tollgate.limits as pinned_limits
}

test_the_larger_of_the_live_and_synced_refusals_counts if {
	synced_more := object.union(refused_before(9), {"live": live(2, [], [], {}, {})})
	data.tollgate.decision.alerts == [burst_alert] with input as agent_sql([drop], synced_more) with data.tollgate.limits as pinned_limits
}

test_live_refusals_count_for_identities_counted_together_and_on_stale_counts if {
	together := object.union(with_live(live(9, [], [], {}, {})), {"aggregated": true})
	data.tollgate.decision.alerts == [burst_alert] with input as agent_sql([drop], together) with data.tollgate.limits as pinned_limits
	stale := object.union(with_live(live(9, [], [], {}, {})), {"status": "unknown"})
	data.tollgate.decision.alerts == [burst_alert] with input as agent_sql([drop], stale) with data.tollgate.limits as pinned_limits
	alerts_of(agent_sql([drop], with_live(live_unknown))) == [] with data.tollgate.limits as pinned_limits
}

test_a_copy_seen_by_another_process_is_refused_on_the_live_addresses if {
	d := data.tollgate.decision with input as agent_sql([select], with_live(live(0, ["10.9.9.9"], ["prod"], {}, {}))) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.reasons == [addresses_reason]
	[a.rule | some a in d.alerts] == ["activity.token_reuse"]
	envs := data.tollgate.decision with input as agent_sql([select], with_live(live(0, [], ["dev"], {}, {}))) with data.tollgate.limits as pinned_limits
	envs.reasons == [environments_reason]
}

test_a_token_beyond_the_bound_is_refused_on_its_live_addresses if {
	beyond := object.union(with_live(live(0, ["10.9.9.9"], [], {}, {})), {"token": null})
	data.tollgate.decision.reasons == [addresses_reason] with input as agent_sql([select], beyond) with data.tollgate.limits as pinned_limits
}

test_a_token_seen_only_here_passes_live if {
	data.tollgate.decision.action == "allow" with input as agent_sql([select], with_live(live(0, ["10.0.0.7"], ["prod"], {}, {}))) with data.tollgate.limits as pinned_limits
}

# -- activity.shared_volume -----------------------------------------------------------------------

target_reason := "10001 personal values masked on target orders-sql in the last hour over every identity (the limit is 10000): reads wait for approval"

group_reason := "5001 personal values masked for group agents in the last hour over every identity (the limit is 5000): reads wait for approval"

test_reads_past_a_targets_hour_over_every_identity_are_held_and_alerted if {
	d := data.tollgate.decision with input as agent_sql([select], with_live(live(0, [], [], {"email": 10000, "phone": 1}, {}))) with data.tollgate.limits as pinned_limits
	d.action == "hold"
	d.rules == ["activity.shared_volume"]
	d.reasons == [target_reason]
	d.approvers == ["group:dba"]
	d.alerts == [{
		"rule": "activity.shared_volume", "severity": "warning", "key": "target:orders-sql",
		"message": "10001 personal values masked on target orders-sql in the last hour over every identity (the limit is 10000); a read by svc-autogen is held",
	}]
}

test_reads_past_a_groups_hour_over_every_identity_are_held_and_alerted if {
	d := data.tollgate.decision with input as agent_sql([select], with_live(live(0, [], [], {}, {"us_ssn": 5001}))) with data.tollgate.limits as pinned_limits
	d.action == "hold"
	d.reasons == [group_reason]
	d.alerts[0].key == "group:agents"
}

test_shared_volume_up_to_the_limits_and_of_other_detectors_passes if {
	at := with_live(live(0, [], [], {"email": 10000, "ip_address": 90000}, {"phone": 5000}))
	d := data.tollgate.decision with input as agent_sql([select], at) with data.tollgate.limits as pinned_limits
	d.action == "allow"
	object.get(d, "alerts", []) == []
}

test_shared_volume_holds_reads_only if {
	over := with_live(live(0, [], [], {"email": 20000}, {"email": 20000}))
	data.tollgate.decision.action == "allow" with input as agent_sql([insert], over) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as sql_as(["agents", "privileged"], [select], over) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as http_as("GET", {"masking": "off"}, over) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "hold" with input as http_as("GET", {}, over) with data.tollgate.limits as pinned_limits
}

test_reads_are_refused_with_503_while_the_live_counts_are_unknown if {
	d := data.tollgate.decision with input as agent_sql([select], with_live(live_unknown)) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.status == 503
	d.rules == ["activity.shared_volume"]
	contains(d.reasons[0], "could not be read")
	data.tollgate.decision.action == "allow" with input as agent_sql([insert], with_live(live_unknown)) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as agent_sql([select], with_live(live_unknown))
		with data.tollgate.limits as {"personal_detectors": ["email"]}
}

test_no_live_counts_no_shared_volume_rule if {
	data.tollgate.decision.action == "allow" with input as agent_sql([select], with_live(null)) with data.tollgate.limits as pinned_limits
	data.tollgate.decision.action == "allow" with input as agent_sql([select], known(quiet)) with data.tollgate.limits as pinned_limits
}

test_the_shared_limits_are_data if {
	over := with_live(live(0, [], [], {"email": 3}, {}))
	d := data.tollgate.decision with input as agent_sql([select], over)
		with data.tollgate.limits as {"personal_detectors": ["email"], "personal_values_per_hour_per_target": 2}
	d.action == "hold"
	data.tollgate.decision.action == "allow" with input as agent_sql([select], over)
		with data.tollgate.limits as {"personal_detectors": ["email"]}
}

test_a_refusal_on_the_merits_keeps_403_beside_an_unknown_count if {
	stale := activity("unknown", quiet, token_from(["10.9.9.9"], ["prod"]))
	d := data.tollgate.decision with input as agent_sql([select], stale) with data.tollgate.limits as pinned_limits
	d.action == "deny"
	d.rules == ["activity.personal_volume", "activity.token_reuse"]
	not d.status
}

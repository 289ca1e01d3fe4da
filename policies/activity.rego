# What the caller has been doing (input.activity: counts over the last minute, hour and
# day for the identity and for its token, by jti), and the rules that decide on it or
# alert on it. The thresholds are data: `data.tollgate.limits` (limits.rego).
#
# input.activity is null or missing where activity is not tracked (`activity.enabled`
# false, a hand-built input, a what-if replay of an old record): every rule here then
# does nothing, and so with `status: "off"`. With `status: "unknown"` (the shared counts
# are stale past their bound: a store outage) the counts cannot be trusted, and only
# activity.personal_volume fails closed.
#
# input.activity.live holds the few counts summed over every worker and replica at the
# moment of a request's decision (extproc/activity/live.py: the identity's refusals in
# the minute, the token's addresses and environments in the day, the personal values
# masked on the target and for each of the identity's groups in the hour): the rules
# guarding against bursts, copies and volume across identities read them, so a burst
# Envoy spreads over processes faster than their syncs is seen. null on a response's
# decision and where not tracked; with `status: "unknown"` (the store did not answer in
# time) activity.shared_volume fails closed.
#
# Every rule here is of the decision's live part (tollgate.rego): it adds to
# `live_denials`, `live_holds` and `live_alerts`, evaluated on every exchange. Alerts are
# objects {"rule", "severity" ("info", "warning" or "critical"), "message"}, which
# tollgate.rego puts in the decision (extproc/exchange/alerts.py delivers them). The
# outcome is read through `outcome_refused` and `outcome_held`; no rule of the live
# part's denials or holds may read them, nor `alerts` or `decision`.
package tollgate

import rego.v1

# Activity is tracked for this exchange (known, or stale: "unknown"). Every rule here is
# read only then: the live part is evaluated on every exchange.
activity_tracked if input.activity.status in {"known", "unknown"}

live_denials contains x if {
	activity_tracked
	some x in activity_denials
}

live_holds contains x if {
	activity_tracked
	some x in activity_holds
}

live_alerts contains x if {
	activity_tracked
	some x in activity_alerts
}

# The outcome so far, for the live part's messages (here and egress.rego's): the cached
# part's answer when tollgate gives it, its rules' otherwise (`decision` alone), and the
# live part's own. Here, not in tollgate.rego, which no file may read (OPA loads a pack
# file by file: the files' dependencies go one way).
outcome_refused_by contains d.rule if some d in live_denials

outcome_refused_by contains rule if {
	input.cached.action == "deny"
	some rule in input.cached.rules
}

outcome_refused_by contains d.rule if {
	not input.cached
	some d in denials
}

outcome_refused if count(outcome_refused_by) > 0

outcome_held if count(live_holds) > 0

outcome_held if input.cached.action == "hold"

outcome_held if {
	not input.cached
	count(holds) > 0
}

# A limit of limits.rego: undefined when it is left out or not a number (its rule is off).
# Looked up by a name given as a variable, so that OPA's type checker does not refuse a
# pack whose limits.rego leaves one out.
activity_limit(name) := n if {
	n := data.tollgate.limits[name]
	is_number(n)
}

# Who acts, for messages.
activity_who := input.identity.sub if {
	is_string(input.identity.sub)
} else := "anonymous"

# Whether the exchange at hand was refused, held or allowed, for messages.
activity_outcome := "refused" if {
	outcome_refused
} else := "held for approval" if {
	outcome_held
} else := "allowed"

# -- activity.personal_volume ---------------------------------------------------------------
#
# More than limits.personal_values_per_hour personal values (limits.personal_detectors)
# masked in the identity's answers within the last hour: its further reads wait for a dba.
# A read is, on a target not labelled `masking: "off"` (one that carries no data; nothing
# is masked, so nothing counted, there):
# - on sql-http and postgres targets, a request with a statement that reads (the `read`
#   effect, whatever else it does: `SELECT ...; INSERT ...` and `SELECT nextval(), ...`
#   read too);
# - on http and sql-http targets, a GET (Datasette's /db/table.json reads rows without SQL).
# Not held: writes (though one with RETURNING returns rows: the reading does not say
# whether a write has one), k8s, llm and mcp targets.
# The `privileged` group is left out: its personal values are not masked (tollgate.rego),
# so not counted, and the rule could only ever hold its reads while activity is unknown.
# Identities beyond the tracking bound are counted together (`aggregated`): their common
# count is compared with the limit, which holds sooner, never later.
# While activity is unknown the count cannot be trusted: the same reads are refused with
# 503 (fails closed), whatever the count says. An outage of the store is no question for
# a person: a hold would leave an approval waiting for a request that has given up, and
# a 503 tells the client to try again once the store answers.

activity_holds contains {
	"rule": "activity.personal_volume",
	"reason": activity_volume_reason(activity_personal_values, activity_limit("personal_values_per_hour")),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	input.activity.status == "known"
	activity_personal_values > activity_limit("personal_values_per_hour")
	activity_personal_read
}

activity_denials contains {
	"rule": "activity.personal_volume",
	"reason": activity_unknown_reason,
	"status": 503,
} if {
	input.activity.status == "unknown"
	activity_limit("personal_values_per_hour")
	activity_personal_read
}

activity_unknown_reason := "activity is unknown (the shared counts are stale: the store does not answer): reads are refused until it answers again; try again later"

activity_live_unknown_reason := "the shared counts of personal values could not be read (the store did not answer in time): reads are refused until it answers; try again later"

activity_volume_reason(n, limit) := sprintf(
	"%v personal values masked in the last hour for identities beyond the tracking bound, counted together (the limit is %v): reads wait for approval",
	[n, limit],
) if {
	input.activity.aggregated == true
} else := sprintf("%v personal values masked in the last hour (the limit is %v): reads wait for approval", [n, limit])

# The personal values masked in the identity's answers within the last hour.
activity_personal_values := sum([n |
	some detector in array_or_empty(object.get(data.tollgate.limits, "personal_detectors", []))
	n := input.activity.identity.hour.masked[detector]
	is_number(n)
])

activity_personal_read if {
	not activity_target_unmasked
	not "privileged" in groups
	activity_read
}

activity_target_unmasked if input.target.labels.masking == "off"

activity_read if {
	input.target.protocol in {"sql-http", "postgres", "mysql"}
	some s in sql_statements
	"read" in statement_effects(s)
}

activity_read if {
	input.target.protocol in {"http", "sql-http"}
	request_method == "GET"
}

# -- activity.shared_volume -------------------------------------------------------------------
#
# More than limits.personal_values_per_hour_per_target personal values masked on this
# target, or more than limits.personal_values_per_hour_per_group for one of the identity's
# groups, within the last hour over every identity (input.activity.live, summed over every
# process at this decision): one deployment reading under the identity's limit with many
# identities. Its further reads (as activity.personal_volume's: same reads, same
# exceptions) wait for a dba, and a warning alert per target or group (its `key`). While
# the live counts are unknown (the store did not answer in time, retried for a second),
# the same reads are refused with 503.

activity_holds contains {
	"rule": "activity.shared_volume",
	"reason": sprintf("%v personal values masked on target %v in the last hour over every identity (the limit is %v): reads wait for approval",
		[activity_target_values, input.target.name, activity_limit("personal_values_per_hour_per_target")]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	activity_target_values > activity_limit("personal_values_per_hour_per_target")
	activity_personal_read
}

activity_holds contains {
	"rule": "activity.shared_volume",
	"reason": sprintf("%v personal values masked for group %v in the last hour over every identity (the limit is %v): reads wait for approval",
		[n, group, activity_limit("personal_values_per_hour_per_group")]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	some group, n in activity_group_values
	n > activity_limit("personal_values_per_hour_per_group")
	activity_personal_read
}

activity_denials contains {
	"rule": "activity.shared_volume",
	"reason": activity_live_unknown_reason,
	"status": 503,
} if {
	input.activity.live.status == "unknown"
	activity_shared_limits
	activity_personal_read
}

activity_alerts contains {
	"rule": "activity.shared_volume",
	"severity": "warning",
	"message": sprintf("%v personal values masked on target %v in the last hour over every identity (the limit is %v); a read by %v is held",
		[activity_target_values, input.target.name, activity_limit("personal_values_per_hour_per_target"), activity_who]),
	"key": sprintf("target:%v", [input.target.name]),
} if {
	activity_target_values > activity_limit("personal_values_per_hour_per_target")
	activity_personal_read
}

activity_alerts contains {
	"rule": "activity.shared_volume",
	"severity": "warning",
	"message": sprintf("%v personal values masked for group %v in the last hour over every identity (the limit is %v); a read by %v is held",
		[n, group, activity_limit("personal_values_per_hour_per_group"), activity_who]),
	"key": sprintf("group:%v", [group]),
} if {
	some group, n in activity_group_values
	n > activity_limit("personal_values_per_hour_per_group")
	activity_personal_read
}

activity_shared_limits if {
	some name in ["personal_values_per_hour_per_target", "personal_values_per_hour_per_group"]
	activity_limit(name)
}

# The personal values masked within the hour in `masked` (detector -> count).
activity_personal_sum(masked) := sum([n |
	some detector in array_or_empty(object.get(data.tollgate.limits, "personal_detectors", []))
	n := masked[detector]
	is_number(n)
])

activity_target_values := activity_personal_sum(input.activity.live.target.hour.masked) if {
	input.activity.live.status == "known"
	is_object(input.activity.live.target.hour.masked)
}

activity_group_values := {group: activity_personal_sum(counts.hour.masked) |
	input.activity.live.status == "known"
	some group, counts in input.activity.live.groups
	is_object(counts.hour.masked)
}

# -- activity.admin_action --------------------------------------------------------------------
#
# An administrative action by an agent (input.activity.exchange.administrative, as the
# interpreters classify it: SQL that destroys, grants, reconfigures or reaches the server;
# Kubernetes exec, attach, port-forward, delete, RBAC writes; sudo, su, systemctl, mkfs,
# `git push --force`, `kubectl delete` in a tool call ...): a warning, whether the pack
# refused it or not. Whatever the counts' status: it is this exchange's. A KILL the MySQL
# front does for the agent's own connection (input.mysql.kill: its Ctrl-C) is none.

activity_alerts contains {
	"rule": "activity.admin_action",
	"severity": "warning",
	"message": sprintf("agent %v made an administrative request on %v (%v): %v",
		[activity_who, input.target.name, input.target.environment, activity_outcome]),
} if {
	activity_tracked
	input.activity.exchange.administrative == true
	agent
	not input.mysql.kill.own == true
}

# -- activity.token_reuse ---------------------------------------------------------------------
#
# One token (input.activity.token: its counts by jti; null without one) used from more
# source addresses than limits.token_addresses, or in more environments than
# limits.token_environments, within the day (the `seen` values, this exchange's added):
# it has been copied. Refused from everywhere while those uses are within the day, and a
# critical alert. On stale counts too: what they have seen stays seen. Neither the reason
# (the client may be the copy) nor the alert names the addresses: the record masks IP
# addresses in an alert's message, and the alert's trace ids lead to the exchanges.
# The alert names the environments.

activity_denials contains {
	"rule": "activity.token_reuse",
	"reason": sprintf("this token has been used from %v source addresses within a day (the limit is %v): it may have been copied",
		[count(activity_token_addresses), activity_limit("token_addresses")]),
} if {
	activity_token_tracked
	count(activity_token_addresses) > activity_limit("token_addresses")
}

activity_denials contains {
	"rule": "activity.token_reuse",
	"reason": sprintf("this token has been used in %v environments within a day (the limit is %v): it may have been copied",
		[count(activity_token_environments), activity_limit("token_environments")]),
} if {
	activity_token_tracked
	count(activity_token_environments) > activity_limit("token_environments")
}

activity_alerts contains {
	"rule": "activity.token_reuse",
	"severity": "critical",
	"message": sprintf("token %v of %v used from %v source addresses within a day: it may have been copied",
		[activity_jti, activity_who, count(activity_token_addresses)]),
} if {
	activity_token_tracked
	count(activity_token_addresses) > activity_limit("token_addresses")
}

activity_alerts contains {
	"rule": "activity.token_reuse",
	"severity": "critical",
	"message": sprintf("token %v of %v used in %v environments (%v) within a day: it may have been copied",
		[activity_jti, activity_who, count(activity_token_environments), concat(", ", sort(activity_token_environments))]),
} if {
	activity_token_tracked
	count(activity_token_environments) > activity_limit("token_environments")
}

activity_token_tracked if {
	activity_tracked
	is_object(input.activity.token)
}

activity_token_tracked if {
	activity_tracked
	is_object(input.activity.live.token)
}

activity_jti := input.identity.jti if {
	is_string(input.identity.jti)
} else := "(no jti)"

# The source addresses the token was seen from within the day, and this exchange's
# (input.source is null where the front cannot know it: the PostgreSQL front).
activity_token_addresses contains address if {
	some address in array_or_empty(input.activity.token.seen.addresses)
	is_string(address)
}

activity_token_addresses contains address if {
	some address in array_or_empty(input.activity.live.token.seen.addresses)
	is_string(address)
}

activity_token_addresses contains input.source.address if is_string(input.source.address)

activity_token_environments contains environment if {
	some environment in array_or_empty(input.activity.token.seen.environments)
	is_string(environment)
}

activity_token_environments contains environment if {
	some environment in array_or_empty(input.activity.live.token.seen.environments)
	is_string(environment)
}

activity_token_environments contains input.target.environment if is_string(input.target.environment)

# -- activity.refusal_burst -------------------------------------------------------------------
#
# A refused exchange (a denial: a hold is no refusal) that brings the identity's refusals
# within the last minute to limits.refusals_per_minute or more: a warning (tollgate sends
# it once per identity for a while, not for every refusal of the burst). The count is the
# larger of the live one (every process's refusals, each counted before it was answered)
# and the synced one; the synced one only on known counts (stale ones may hold a minute
# long past), and not for identities beyond the tracking bound (the count is all of
# theirs, not this one's).

activity_alerts contains {
	"rule": "activity.refusal_burst",
	"severity": "warning",
	"message": sprintf("%v was refused %v times within a minute, this time by %v (the limit is %v)",
		[activity_who, activity_minute_refusals + 1, concat(", ", sort(outcome_refused_by)), activity_limit("refusals_per_minute")]),
} if {
	outcome_refused
	activity_minute_refusals + 1 >= activity_limit("refusals_per_minute")
}

activity_minute_refusals := max(activity_refusal_counts) if count(activity_refusal_counts) > 0

activity_refusal_counts contains n if {
	input.activity.live.status == "known"
	n := input.activity.live.identity.minute.refusals
	is_number(n)
}

activity_refusal_counts contains n if {
	input.activity.status == "known"
	not input.activity.aggregated == true
	n := input.activity.identity.minute.refusals
	is_number(n)
}

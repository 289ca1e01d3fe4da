# Unit tests of egress.rego, on input.egress as the egress listener's servicer fills it.
package tollgate_egress_test

import rego.v1

# The lists these tests are written for (egress_lists.rego's as shipped), pinned in every
# decision they take: an operator who edits egress_lists.rego changes where agents may
# go, not whether the pack's tests pass (tollgate runs them before a revision serves).
pinned_lists := {
	"groups": {"agents": {
		"allow": ["pypi.org:443", "files.pythonhosted.org:443"],
		"hold": [], "inspect": [], "deny": [], "first_seen": "alert",
	}},
	"approvers": ["group:security"],
	"hold_seconds": 300,
}

who(groups) := {
	"authenticated": true, "sub": "svc-pip", "iss": "https://login.example.com",
	"aud": ["tollgate"], "email": null, "groups": groups, "jti": "7f3c",
}

addr(address, range) := {"address": address, "range": range}

public := [addr("151.101.0.223", "public")]

# input.egress for host:port resolving to `addresses`, reached before by this identity,
# with `extra` replacing some fields.
egress(host, port, addresses, extra) := object.union({
	"scheme": "tunnel", "host": host, "port": port,
	"destination": sprintf("%v:%v", [host, port]), "literal": false, "addresses": addresses,
	"resolution": {"status": "resolved", "error": null}, "target": null,
	"seen": {"identity": true, "anyone": true, "status": "known"},
}, extra)

# An exchange of `identity` through the egress proxy, to no configured target.
exchange(identity, e) := {
	"phase": "request", "identity": identity,
	"target": {"name": "egress", "protocol": "egress", "environment": "dev", "labels": {}},
	"request": {"method": "CONNECT", "path": "", "query": {}, "headers": {}, "body": null},
	"response": null, "sql": null, "k8s": null, "llm": null, "mcp": null, "postgres": null,
	"approval": null, "egress": e,
}

# An agent's tunnel to host:443 resolving to `addresses`.
to(host, addresses) := exchange(who(["agents"]), egress(host, 443, addresses, {}))

# The same, never reached before by this identity.
first(host, addresses) := exchange(who(["agents"]), egress(host, 443, addresses, {
	"seen": {"identity": false, "anyone": true, "status": "known"},
}))

# data.tollgate.egress with these groups.
lists(groups) := {"groups": groups, "approvers": ["group:security"], "hold_seconds": 300}

agents_allow(entries) := lists({"agents": {"allow": entries, "hold": [], "first_seen": "alert"}})

# The egress rules that refuse or hold the exchange at hand.
egress_rules := {d.rule | some d in data.tollgate.denials; startswith(d.rule, "egress.")} | {h.rule |
	some h in data.tollgate.holds
	startswith(h.rule, "egress.")
}

# -- the default lists ------------------------------------------------------------------------

test_agents_reach_the_python_package_index if {
	every host in ["pypi.org", "files.pythonhosted.org"] {
		d := data.tollgate.decision with input as to(host, public) with data.tollgate.egress as pinned_lists
		d == {"action": "allow", "reasons": [], "rules": [], "mask": {}}
	}
}

test_the_default_lists_take_no_other_port if {
	x := exchange(who(["agents"]), egress("pypi.org", 80, public, {"scheme": "http"}))
	data.tollgate.decision.rules == ["egress.not_allowed"] with input as x with data.tollgate.egress as pinned_lists
}

# -- egress.not_allowed -----------------------------------------------------------------------

test_an_unlisted_destination_is_refused_naming_it_and_the_list if {
	d := data.tollgate.decision with input as to("paste.example.test", public) with data.tollgate.egress as pinned_lists
	d.action == "deny"
	d.rules == ["egress.not_allowed"]
	d.reasons == [concat("", [
		"paste.example.test:443, at 151.101.0.223 (public), is on no allow or hold list for ",
		"this identity (its groups: agents): add \"paste.example.test:443\" to the allow list ",
		"of one of them or of \"*\" (or to a hold list, to approve each request) in ",
		"data.tollgate.egress (policies/egress_lists.rego)",
	])]
}

test_another_groups_list_does_not_apply if {
	l := lists({"ops": {"allow": ["*"]}})
	data.tollgate.decision.rules == ["egress.not_allowed"] with input as to("pypi.org", public)
		with data.tollgate.egress as l
}

test_the_star_group_applies_to_everyone if {
	l := lists({"*": {"allow": ["pypi.org"]}})
	x := exchange(who([]), egress("pypi.org", 443, public, {}))
	data.tollgate.decision.action == "allow" with input as x with data.tollgate.egress as l
}

test_an_identity_without_groups_is_told_so if {
	x := exchange(who([]), egress("pypi.org", 443, public, {}))
	d := data.tollgate.decision with input as x with data.tollgate.egress as pinned_lists
	contains(d.reasons[0], "(its groups: none)")
}

test_a_host_entry_takes_every_port if {
	l := agents_allow(["example.test"])
	x := exchange(who(["agents"]), egress("example.test", 8443, public, {}))
	data.tollgate.decision.action == "allow" with input as x with data.tollgate.egress as l
}

test_entries_are_read_in_lower_case if {
	l := agents_allow(["PyPI.org:443"])
	data.tollgate.decision.action == "allow" with input as to("pypi.org", public)
		with data.tollgate.egress as l
}

test_a_wildcard_takes_names_below_its_domain_only if {
	l := agents_allow(["*.example.test"])
	data.tollgate.decision.action == "allow" with input as to("a.b.example.test", public)
		with data.tollgate.egress as l
	data.tollgate.decision.rules == ["egress.not_allowed"] with input as to("example.test", public)
		with data.tollgate.egress as l
	data.tollgate.decision.rules == ["egress.not_allowed"] with input as to("badexample.test", public)
		with data.tollgate.egress as l
}

test_a_wildcard_with_a_port_takes_that_port_only if {
	l := agents_allow(["*.example.test:443"])
	data.tollgate.decision.action == "allow" with input as to("a.example.test", public)
		with data.tollgate.egress as l
	x := exchange(who(["agents"]), egress("a.example.test", 8443, public, {}))
	data.tollgate.decision.rules == ["egress.not_allowed"] with input as x
		with data.tollgate.egress as l
}

test_star_takes_any_public_destination if {
	l := agents_allow(["*"])
	data.tollgate.decision.action == "allow" with input as to("anything.example.test", public)
		with data.tollgate.egress as l
}

test_entries_that_are_no_strings_are_ignored if {
	l := lists({"agents": {"allow": [443, null, "pypi.org"]}, "ops": "pypi.org"})
	data.tollgate.decision.action == "allow" with input as to("pypi.org", public)
		with data.tollgate.egress as l
}

test_lists_that_are_no_object_refuse_everything if {
	data.tollgate.decision.rules == ["egress.not_allowed"] with input as to("pypi.org", public)
		with data.tollgate.egress as ["pypi.org"]
}

# -- egress.held ------------------------------------------------------------------------------

test_a_held_destination_waits_for_the_approvers if {
	l := lists({"agents": {"allow": [], "hold": ["paste.example.test"], "first_seen": "alert"}})
	d := data.tollgate.decision with input as to("paste.example.test", public)
		with data.tollgate.egress as l
	d.action == "hold"
	d.rules == ["egress.held"]
	d.approvers == ["group:security"]
	d.hold_seconds == 300
	d.mask == {}
	d.reasons == [concat("", [
		"paste.example.test:443, at 151.101.0.223 (public), is on a hold list for this identity ",
		"(its groups: agents) in data.tollgate.egress (policies/egress_lists.rego): each request ",
		"to it waits for approval (put it on an allow list to let it through)",
	])]
}

test_a_hold_takes_the_lists_approvers_and_wait if {
	l := {"groups": {"agents": {"hold": ["*.example.test"]}}, "approvers": ["user:ada"], "hold_seconds": 60}
	d := data.tollgate.decision with input as to("a.example.test", public) with data.tollgate.egress as l
	d.approvers == ["user:ada"]
	d.hold_seconds == 60
}

test_an_allow_entry_wins_over_a_hold_entry if {
	l := lists({
		"agents": {"allow": ["*.example.test"], "hold": []},
		"*": {"hold": ["a.example.test"]},
	})
	data.tollgate.decision.action == "allow" with input as to("a.example.test", public)
		with data.tollgate.egress as l
}

# -- egress.unresolved ------------------------------------------------------------------------

test_a_name_that_does_not_resolve_is_refused_with_the_resolvers_word if {
	x := exchange(who(["agents"]), egress("pypi.org", 443, [], {
		"resolution": {"status": "failed", "error": "NXDOMAIN pypi.org"},
	}))
	d := data.tollgate.decision with input as x with data.tollgate.egress as pinned_lists
	d.rules == ["egress.unresolved"]
	d.reasons == ["pypi.org:443 does not resolve (NXDOMAIN pypi.org): there is no address to reach"]
}

test_no_address_without_an_error_is_refused_too if {
	x := exchange(who(["agents"]), egress("pypi.org", 443, null, {"resolution": null}))
	d := data.tollgate.decision with input as x with data.tollgate.egress as pinned_lists
	d.reasons == ["pypi.org:443 does not resolve: there is no address to reach"]
}

# -- egress.forbidden_range -------------------------------------------------------------------

test_multicast_reserved_and_unspecified_are_refused_even_listed_exactly if {
	every range in ["multicast", "reserved", "unspecified", "documentation"] {
		l := agents_allow(["odd.example.test:443", "*"])
		d := data.tollgate.decision with input as to("odd.example.test", [addr("192.0.2.1", range)])
			with data.tollgate.egress as l
		d.rules == ["egress.forbidden_range"]
		d.reasons == [sprintf(
			"odd.example.test:443 is at 192.0.2.1 (%s): multicast, reserved and unspecified addresses are never reached, whatever the lists say",
			[range],
		)]
	}
}

test_one_forbidden_address_among_public_ones_refuses if {
	d := data.tollgate.decision with input as to("pypi.org", [addr("151.101.0.223", "public"), addr("224.0.0.1", "multicast")]) with data.tollgate.egress as pinned_lists
	d.rules == ["egress.forbidden_range"]
}

test_an_address_without_a_range_is_refused if {
	d := data.tollgate.decision with input as to("pypi.org", [{"address": "151.101.0.223"}, "10.0.0.1"]) with data.tollgate.egress as pinned_lists
	d.rules == ["egress.forbidden_range"]
	d.reasons == ["pypi.org:443 is at 151.101.0.223 (unknown), an unreadable address: multicast, reserved and unspecified addresses are never reached, whatever the lists say"]
}

# -- egress.internal_address ------------------------------------------------------------------

internal_addresses := [
	addr("10.1.2.3", "private"), addr("127.0.0.1", "loopback"), addr("169.254.169.254", "metadata"),
	addr("169.254.1.1", "link_local"), addr("100.64.0.1", "shared"), addr("fd00::1", "private"),
	addr("fe80::1", "link_local"), addr("::1", "loopback"), addr("fd00:ec2::254", "metadata"),
]

test_a_wildcard_listed_name_that_resolves_inside_is_refused if {
	l := agents_allow(["*.example.test"])
	every a in internal_addresses {
		d := data.tollgate.decision with input as to("rebind.example.test", [a])
			with data.tollgate.egress as l
		d.rules == ["egress.internal_address"]
		d.reasons == [sprintf(concat("", [
			"rebind.example.test:443 is at an internal address, %s (%s): it is reached only when ",
			"listed by its exact name (the identity's groups: agents); add \"rebind.example.test:443\" ",
			"(not a wildcard) to the allow or hold list of one of them or of \"*\" in ",
			"data.tollgate.egress (policies/egress_lists.rego)",
		]), [a.address, a.range])]
	}
}

test_star_opens_no_internal_address if {
	d := data.tollgate.decision with input as to("intranet.example.test", [addr("10.1.2.3", "private")])
		with data.tollgate.egress as agents_allow(["*"])
	d.rules == ["egress.internal_address"]
}

test_a_rebound_name_with_a_public_address_too_is_refused if {
	d := data.tollgate.decision with input as to("cdn.example.test", [addr("151.101.0.223", "public"), addr("169.254.169.254", "metadata")])
		with data.tollgate.egress as agents_allow(["*.example.test"])
	d.rules == ["egress.internal_address"]
	contains(d.reasons[0], "is at an internal address, 169.254.169.254 (metadata):")
}

test_an_internal_name_listed_exactly_passes if {
	every entry in ["shop.internal.test", "shop.internal.test:443"] {
		d := data.tollgate.decision with input as to("shop.internal.test", [addr("10.1.2.3", "private")])
			with data.tollgate.egress as agents_allow([entry])
		d.action == "allow"
	}
}

test_an_internal_name_on_a_hold_list_exactly_is_held if {
	l := lists({"agents": {"hold": ["shop.internal.test:443"]}})
	d := data.tollgate.decision with input as to("shop.internal.test", [addr("10.1.2.3", "private")])
		with data.tollgate.egress as l
	d.rules == ["egress.held"]
}

v6(address, range, port) := exchange(who(["agents"]), egress(address, port, [addr(address, range)], {
	"literal": true, "destination": sprintf("[%s]:%v", [address, port]),
	"resolution": {"status": "literal", "error": null},
}))

test_an_ipv6_literal_listed_exactly_passes if {
	every entry in ["fd00::1", "[fd00::1]", "[fd00::1]:443"] {
		data.tollgate.decision.action == "allow" with input as v6("fd00::1", "private", 443)
			with data.tollgate.egress as agents_allow([entry])
	}
}

test_an_ipv6_literal_listed_for_another_port_is_refused if {
	d := data.tollgate.decision with input as v6("fd00::1", "private", 8443)
		with data.tollgate.egress as agents_allow(["[fd00::1]:443"])
	d.rules == ["egress.internal_address", "egress.not_allowed"]
}

test_ipv6_internal_ranges_are_refused_unlisted if {
	every a in [["fe80::1", "link_local"], ["::1", "loopback"], ["fd00:ec2::254", "metadata"]] {
		d := data.tollgate.decision with input as v6(a[0], a[1], 443)
			with data.tollgate.egress as agents_allow(["*"])
		d.rules == ["egress.internal_address"]
		contains(d.reasons[0], sprintf("[%s]:443 is at an internal address, %s (%s)", [a[0], a[0], a[1]]))
	}
}

test_an_ipv6_public_literal_passes_through_star if {
	data.tollgate.decision.action == "allow" with input as v6("2001:4860::8888", "public", 443)
		with data.tollgate.egress as agents_allow(["*"])
}

test_a_wildcard_takes_no_ip_literal if {
	x := exchange(who(["agents"]), egress("10.0.0.1", 443, [addr("10.0.0.1", "private")], {"literal": true}))
	d := data.tollgate.decision with input as x with data.tollgate.egress as agents_allow(["*.0.0.1"])
	d.rules == ["egress.internal_address", "egress.not_allowed"]
}

# -- egress.first_seen ------------------------------------------------------------------------

test_a_first_visit_alerts_once_per_destination if {
	d := data.tollgate.decision with input as first("pypi.org", public) with data.tollgate.egress as pinned_lists
	d.action == "allow"
	d.alerts == [{
		"rule": "egress.first_seen", "severity": "warning",
		"message": "svc-pip reached pypi.org:443 for the first time", "key": "pypi.org:443",
	}]
}

test_a_visit_seen_before_does_not_alert if {
	d := data.tollgate.decision with input as to("pypi.org", public) with data.tollgate.egress as pinned_lists
	not d.alerts
}

test_a_first_visit_can_wait_for_approval if {
	l := lists({"agents": {"allow": ["pypi.org"], "first_seen": "hold"}})
	d := data.tollgate.decision with input as first("pypi.org", public) with data.tollgate.egress as l
	d.action == "hold"
	d.rules == ["egress.first_seen"]
	d.approvers == ["group:security"]
	d.reasons == [concat("", [
		"svc-pip never reached pypi.org:443 before: a first request to a destination waits for ",
		"approval (first_seen \"hold\" for its groups: agents, in data.tollgate.egress ",
		"(policies/egress_lists.rego))",
	])]
	not d.alerts
}

test_a_first_visit_can_be_refused if {
	l := lists({"agents": {"allow": ["pypi.org"], "first_seen": "deny"}})
	d := data.tollgate.decision with input as first("pypi.org", public) with data.tollgate.egress as l
	d.action == "deny"
	d.rules == ["egress.first_seen"]
	d.reasons == [concat("", [
		"svc-pip never reached pypi.org:443 before, and a first request to a destination is ",
		"refused (first_seen \"deny\" for its groups: agents, in data.tollgate.egress ",
		"(policies/egress_lists.rego))",
	])]
	not d.alerts
}

test_the_strictest_first_seen_of_the_groups_applies if {
	l := lists({
		"agents": {"allow": ["pypi.org"], "first_seen": "alert"},
		"builders": {"first_seen": "deny"},
		"*": {"first_seen": "hold"},
	})
	data.tollgate.decision.rules == ["egress.first_seen"] with input as first("pypi.org", public)
		with data.tollgate.egress as l
	data.tollgate.decision.action == "hold" with input as first("pypi.org", public)
		with data.tollgate.egress as l
	x := exchange(who(["agents", "builders"]), egress("pypi.org", 443, public, {"seen": {"identity": false}}))
	data.tollgate.decision.action == "deny" with input as x with data.tollgate.egress as l
}

test_a_group_without_first_seen_adds_none if {
	l := lists({"agents": {"allow": ["pypi.org"]}})
	d := data.tollgate.decision with input as first("pypi.org", public) with data.tollgate.egress as l
	d == {"action": "allow", "reasons": [], "rules": [], "mask": {}}
}

test_an_unknown_first_seen_counts_as_deny if {
	l := lists({"agents": {"allow": ["pypi.org"], "first_seen": "warn"}})
	data.tollgate.decision.rules == ["egress.first_seen"] with input as first("pypi.org", public)
		with data.tollgate.egress as l
	data.tollgate.decision.action == "deny" with input as first("pypi.org", public)
		with data.tollgate.egress as l
}

test_an_unknown_seen_status_is_refused_with_503_not_held if {
	x := exchange(who(["agents"]), egress("pypi.org", 443, public, {
		"seen": {"identity": false, "anyone": false, "status": "unknown"},
	}))
	every mode in ["hold", "deny"] {
		l := lists({"agents": {"allow": ["pypi.org"], "first_seen": mode}})
		d := data.tollgate.decision with input as x with data.tollgate.egress as l
		d.action == "deny"
		d.status == 503
		d.rules == ["egress.first_seen"]
		contains(d.reasons[0], "whether svc-pip reached pypi.org:443 before is unknown: the store of reached destinations does not answer")
		endswith(d.reasons[0], "; try again later")
	}
}

test_an_unknown_seen_status_lets_an_alerting_identity_through if {
	l := lists({"agents": {"allow": ["pypi.org"], "first_seen": "alert"}})
	x := exchange(who(["agents"]), egress("pypi.org", 443, public, {
		"seen": {"identity": false, "anyone": false, "status": "unknown"},
	}))
	data.tollgate.decision.action == "allow" with input as x with data.tollgate.egress as l
}

test_a_missing_seen_counts_as_never_reached if {
	x := exchange(who(["agents"]), egress("pypi.org", 443, public, {"seen": null}))
	data.tollgate.decision.alerts[0].rule == "egress.first_seen" with input as x with data.tollgate.egress as pinned_lists
}

test_a_refused_first_visit_raises_no_alert_and_no_first_seen_rule if {
	d := data.tollgate.decision with input as first("paste.example.test", public) with data.tollgate.egress as pinned_lists
	d.rules == ["egress.not_allowed"]
	not d.alerts
	held := data.tollgate.decision with input as first("pypi.org", public)
		with data.tollgate.egress as lists({"agents": {"hold": ["pypi.org"], "first_seen": "alert"}})
	held.rules == ["egress.held"]
	not held.alerts
}

# -- egress.tunnel_to_target ------------------------------------------------------------------

# A destination configured as the target shop-api (protocol http): the exchange is decided
# under that target, input.egress set too.
shop(scheme) := object.union(exchange(who(["agents"]), egress("shop.internal.test", 8080, [addr("10.1.2.3", "private")], {
	"scheme": scheme, "target": "shop-api",
})), {
	"target": {"name": "shop-api", "protocol": "http", "environment": "dev", "labels": {}},
	"request": {"method": "GET", "path": "/orders", "query": {}, "headers": {}, "body": null},
})

test_a_tunnel_to_a_configured_target_is_refused if {
	d := data.tollgate.decision with input as shop("tunnel")
		with data.tollgate.egress as agents_allow(["shop.internal.test:8080"])
	d.rules == ["egress.tunnel_to_target"]
	d.reasons == [concat("", [
		"a CONNECT tunnel to shop.internal.test:8080 is refused: it is the configured target ",
		"shop-api, whose requests tollgate reads; send plain HTTP through the proxy ",
		"(http://shop.internal.test:8080/...), or put it on an inspect list, so it can be read",
	])]
}

test_plain_http_to_a_configured_target_passes_with_its_mask if {
	d := data.tollgate.decision with input as shop("http")
		with data.tollgate.egress as agents_allow(["shop.internal.test:8080"])
	d.action == "allow"
	d.mask.detectors == ["all"]
}

test_a_configured_target_is_listed_as_any_destination if {
	d := data.tollgate.decision with input as shop("http") with data.tollgate.egress as pinned_lists
	d.rules == ["egress.internal_address", "egress.not_allowed"]
}

# -- egress.unauthenticated -------------------------------------------------------------------

test_an_unauthenticated_caller_reaches_nothing if {
	l := lists({"*": {"allow": ["*"]}})
	x := exchange({"authenticated": false}, egress("pypi.org", 443, public, {}))
	d := data.tollgate.decision with input as x with data.tollgate.egress as l
	d.rules == ["egress.unauthenticated"]
	d.reasons == ["pypi.org:443: the egress proxy takes no one without a verified token (send it as the proxy password, or as Proxy-Authorization: Bearer)"]
	y := exchange({}, egress("pypi.org", 443, public, {}))
	data.tollgate.decision.rules == ["egress.unauthenticated"] with input as y with data.tollgate.egress as l
}

# -- where the rules are silent ---------------------------------------------------------------

crm := {
	"phase": "request", "identity": who(["agents"]),
	"target": {"name": "crm", "protocol": "http", "environment": "prod", "labels": {}},
	"request": {"method": "GET", "path": "/api/customers", "query": {}, "headers": {}, "body": null},
	"response": null, "sql": null, "k8s": null, "llm": null, "mcp": null, "postgres": null,
	"approval": null,
}

test_no_egress_no_egress_rule if {
	every x in [crm, object.union(crm, {"egress": null})] {
		egress_rules == set() with input as x with data.tollgate.egress as pinned_lists
		d := data.tollgate.decision with input as x with data.tollgate.egress as pinned_lists
		d.action == "allow"
		d.mask.detectors == ["all"]
		not d.alerts
	}
}

test_the_response_phase_is_not_decided_again if {
	l := lists({"agents": {"hold": ["paste.example.test"], "first_seen": "hold"}})
	x := object.union(first("paste.example.test", public), {
		"phase": "response", "response": {"status": 200, "headers": {}, "body": null},
	})
	egress_rules == set() with input as x with data.tollgate.egress as l
}

test_a_shapeless_egress_is_refused if {
	d := data.tollgate.decision with input as exchange(who(["agents"]), {}) with data.tollgate.egress as pinned_lists
	d.rules == ["egress.not_allowed", "egress.unresolved"]
	"(an unnamed destination) does not resolve: there is no address to reach" in d.reasons
}

test_a_tunnel_to_a_target_given_by_no_name_is_refused if {
	x := exchange(who(["agents"]), egress("pypi.org", 443, public, {"target": {"name": "x"}}))
	d := data.tollgate.decision with input as x with data.tollgate.egress as pinned_lists
	d.rules == ["egress.tunnel_to_target"]
	contains(d.reasons[0], "it is the configured target (unnamed),")
}

test_a_name_listed_exactly_never_reaches_a_metadata_address if {
	d := data.tollgate.decision with input as to("pypi.org", [addr("169.254.169.254", "metadata")])
		with data.tollgate.egress as agents_allow(["pypi.org:443"])
	d.rules == ["egress.internal_address"]
	contains(d.reasons[0], "reached only by that address itself, listed as an IP literal")
}

test_a_metadata_address_listed_as_its_literal_passes if {
	i := object.union(to("169.254.169.254", [addr("169.254.169.254", "metadata")]), {"egress": {"literal": true}})
	d := data.tollgate.decision with input as i
		with data.tollgate.egress as agents_allow(["169.254.169.254:443"])
	d.action == "allow"
}

test_a_name_not_yet_looked_up_raises_no_first_seen_alert if {
	i := object.union(first("pypi.org", []), {"egress": {"resolution": {"status": "pending", "error": null}}})
	d := data.tollgate.decision with input as i
		with data.tollgate.egress as agents_allow(["pypi.org:443"])
	d.action == "allow"
	not d.alerts
}

# -- inspect and deny lists -------------------------------------------------------------------

connect_to(host, groups) := d if {
	d := data.tollgate.decision with input as exchange(who(["agents"]), egress(host, 443, public, {}))
		with data.tollgate.egress as lists(groups)
}

# A request read inside an inspected tunnel to `host`.
inside_tunnel(host) := object.union(exchange(who(["agents"]), egress(host, 443, public, {
	"scheme": "https", "inspected": true, "resolution": {"status": "tunnel", "error": null},
})), {"request": {"method": "POST", "path": "/paste", "query": {}, "headers": {}, "body": null}})

test_a_tunnel_to_a_destination_on_an_inspect_list_is_read if {
	d := connect_to("paste.example.com", {"agents": {"inspect": ["paste.example.com"]}})
	d.action == "allow"
	d.inspect == true
}

test_an_inspect_entry_wins_over_an_allow_entry if {
	d := connect_to("api.example.com", {"agents": {"allow": ["*"], "inspect": ["*.example.com"]}})
	d.inspect == true
}

test_a_tunnel_only_allowed_is_not_read if {
	d := connect_to("pypi.org", {"agents": {"allow": ["pypi.org"], "inspect": ["paste.example.com"]}})
	d.action == "allow"
	not d.inspect
}

test_inspection_is_per_group if {
	d := connect_to("paste.example.com", {"agents": {"allow": ["*"]}, "auditors": {"inspect": ["*"]}})
	not d.inspect
}

test_a_deny_entry_wins_over_every_list if {
	d := connect_to("paste.example.com", {
		"agents": {"allow": ["*"], "inspect": ["*.example.com"], "deny": ["paste.example.com"]},
	})
	d.action == "deny"
	d.rules == ["egress.denied"]
	contains(d.reasons[0], "paste.example.com")
	contains(d.reasons[0], "deny list")
}

test_an_ip_address_on_an_inspect_list_is_refused_not_tunnelled if {
	d := data.tollgate.decision with input as exchange(who(["agents"]), egress("203.0.113.7", 443, [addr("203.0.113.7", "public")], {"literal": true}))
		with data.tollgate.egress as lists({"agents": {"inspect": ["203.0.113.7"]}})
	d.rules == ["egress.inspect_address"]
}

test_a_request_inside_a_read_tunnel_is_decided_on_the_lists_again if {
	allowed := data.tollgate.decision with input as inside_tunnel("paste.example.com")
		with data.tollgate.egress as lists({"agents": {"inspect": ["paste.example.com"]}})
	allowed.action == "allow"
	not allowed.inspect # only a tunnel is read or not
	denied := data.tollgate.decision with input as inside_tunnel("paste.example.com")
		with data.tollgate.egress as lists({"agents": {"inspect": ["*.example.com"], "deny": ["paste.example.com"]}})
	denied.rules == ["egress.denied"]
}

test_a_hold_list_holds_the_requests_of_a_read_tunnel_not_the_tunnel if {
	groups := {"agents": {"hold": ["paste.example.com"], "inspect": ["paste.example.com"]}}
	tunnel := connect_to("paste.example.com", groups)
	tunnel.action == "allow"
	tunnel.inspect == true
	request := data.tollgate.decision with input as inside_tunnel("paste.example.com")
		with data.tollgate.egress as lists(groups)
	request.action == "hold"
	request.rules == ["egress.held"]
}

test_a_configured_target_on_an_inspect_list_is_read_not_refused if {
	d := data.tollgate.decision with input as shop("tunnel")
		with data.tollgate.egress as lists({"agents": {"inspect": ["shop.internal.test:8080"]}})
	not "egress.tunnel_to_target" in d.rules
	d.inspect == true
}

test_plain_http_to_a_destination_on_an_inspect_list_is_masked if {
	d := data.tollgate.decision with input as object.union(inside_tunnel("paste.example.com"), {"egress": {"scheme": "http", "inspected": false}})
		with data.tollgate.egress as lists({"agents": {"inspect": ["paste.example.com"]}})
	d.action == "allow"
	count(d.mask) > 0
	allowed_only := data.tollgate.decision with input as object.union(inside_tunnel("pypi.org"), {"egress": {"scheme": "http", "inspected": false}})
		with data.tollgate.egress as lists({"agents": {"allow": ["pypi.org"]}})
	allowed_only.mask == {}
}

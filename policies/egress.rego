# Egress: what an identity reaches through the egress proxy (input.egress, set on every
# exchange that came through the egress listener: absolute-form HTTP requests and CONNECT
# tunnels, to any destination, including those configured as targets). Decided on the
# destination as the identity's groups list it (data.tollgate.egress, egress_lists.rego:
# data, not code) and on the addresses tollgate resolved it to, which are the ones Envoy
# connects to: a name is judged by where it leads, so a listed name that resolves to an
# internal address (DNS rebinding) is refused as that address would be.
#
# Only at the request phase: a decided response (a configured llm target's) has the same
# destination, and deciding it again would hold an approved request a second time.
# Every reason names the destination, and says which list of data.tollgate.egress would
# change the answer. No rule here reads `alerts` or `decision`; the alert, of the
# decision's live part (tollgate.rego), reads the outcome.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (egress_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
egress_exchange if input.egress != null

denials contains x if {
	egress_exchange
	some x in egress_denials
}

holds contains x if {
	egress_exchange
	some x in egress_holds
}

live_alerts contains x if {
	egress_exchange
	some x in egress_alerts
}

egress_decided if {
	input.egress != null
	not input.phase == "response"
}

# -- The lists -------------------------------------------------------------------------------

# data.tollgate.egress, {} when it is no object (every destination is then refused as not
# listed). Read by its full path, so the pack decides without the file that defines it.
egress_config := {k: v |
	some k, v in data.tollgate.egress
	is_object(data.tollgate.egress)
}

egress_table := object.get(egress_config, "groups", {})

egress_approvers := object.get(egress_config, "approvers", ["group:security"])

egress_hold_seconds := object.get(egress_config, "hold_seconds", 300)

# The groups whose lists apply to this identity: its own, and "*" (everyone).
egress_groups contains name if {
	some name, lists in egress_table
	is_object(lists)
	egress_member(name)
}

egress_member(name) if name == "*"

egress_member(name) if name in groups

# The entries of the `kind` lists ("allow" or "hold") of those groups, lower-case.
egress_entries(kind) := {lower(entry) |
	some name in egress_groups
	some entry in array_or_empty(object.get(egress_table[name], kind, []))
	is_string(entry)
}

egress_allowed if {
	some entry in egress_entries("allow")
	egress_matches(entry)
}

egress_on_hold if {
	some entry in egress_entries("hold")
	egress_matches(entry)
}

egress_listed if egress_allowed

egress_listed if egress_on_hold

egress_listed if egress_inspected

# On an inspect list: reached like an allowed destination, and an HTTPS tunnel to it is
# read (TLS ended with the egress CA's certificate, each request inside decided and its
# answer masked) rather than passed unread.
egress_inspected if {
	some entry in egress_entries("inspect")
	egress_matches(entry)
}

# What tollgate reads of this destination is masked like any target's data: a request
# inside a read tunnel, and plain HTTP to a destination on an inspect list (the same
# data, sent without TLS, is no less data leaving). lineage.rego's `unmasked` reads it.
egress_read if input.egress.inspected == true

egress_read if {
	input.egress.scheme == "http"
	egress_inspected
}

egress_refused if {
	some entry in egress_entries("deny")
	egress_matches(entry)
}

# Listed by an entry naming the destination exactly: what lets an internal address through.
egress_named if {
	some entry in (egress_entries("allow") | egress_entries("hold")) | egress_entries("inspect")
	entry in egress_names
}

# The exact names of the destination: its host (an IP literal as is, IPv6 also in
# brackets) and host:port.
egress_names := {egress_host, sprintf("[%s]", [egress_host]), egress_destination}

egress_matches(entry) if entry == "*"

egress_matches(entry) if entry in egress_names

# "*.example.com" takes any name below example.com at any port, "*.example.com:443" at that
# port; neither takes example.com itself, nor an IP literal.
egress_matches(entry) if {
	startswith(entry, "*.")
	not input.egress.literal == true
	egress_below(trim_prefix(entry, "*"))
}

egress_below(suffix) if endswith(egress_host, suffix)

egress_below(suffix) if endswith(egress_destination, suffix)

# -- What the destination is -----------------------------------------------------------------

# Defined whatever the input's shape, so that no reason is left undefined (a refusal lost).
egress_destination := input.egress.destination if {
	is_string(input.egress.destination)
} else := "(an unnamed destination)"

egress_host := input.egress.host if {
	is_string(input.egress.host)
} else := egress_destination

egress_addresses := input.egress.addresses if {
	is_array(input.egress.addresses)
} else := []

# The ranges tollgate classifies addresses in (input.egress.addresses[].range) that may be
# reached: public ones, and internal ones when listed by name. Any other range (multicast,
# reserved, unspecified, or one this pack does not know) never is.
egress_internal_ranges := {"private", "loopback", "link_local", "metadata", "shared"}

# An address's range; "unknown" for an entry without both an address and a range.
egress_range(a) := a.range if {
	is_string(a.address)
	is_string(a.range)
} else := "unknown"

egress_describe(a) := sprintf("%s (%s)", [a.address, egress_range(a)]) if {
	is_string(a.address)
} else := "an unreadable address"

egress_internal_addresses contains egress_describe(a) if {
	some a in egress_addresses
	egress_range(a) in egress_internal_ranges
}

egress_forbidden_addresses contains egress_describe(a) if {
	some a in egress_addresses
	not egress_range(a) in egress_internal_ranges
	egress_range(a) != "public"
}

# Where the destination leads, for reasons: ", at 151.101.0.223 (public),".
egress_at := sprintf(", at %s,", [concat(", ", sort([egress_describe(a) | some a in egress_addresses]))]) if {
	count(egress_addresses) > 0
} else := ""

# The identity's groups, for reasons.
egress_groups_text := concat(", ", sort(groups)) if {
	count(groups) > 0
} else := "none"

egress_lists_file := "data.tollgate.egress (policies/egress_lists.rego)"

# -- egress.unauthenticated: no verified proxy token, no destination --------------------------

egress_denials contains {
	"rule": "egress.unauthenticated",
	"reason": sprintf("%s: the egress proxy takes no one without a verified token (send it as the proxy password, or as Proxy-Authorization: Bearer)", [egress_destination]),
} if {
	egress_decided
	not input.identity.authenticated == true
}

# -- egress.unresolved: no address to connect to ----------------------------------------------

egress_denials contains {
	"rule": "egress.unresolved",
	"reason": sprintf("%s does not resolve%s: there is no address to reach", [egress_destination, egress_resolution_note]),
} if {
	egress_decided
	count(egress_addresses) == 0
	not input.egress.resolution.status == "pending"
}

egress_resolution_note := sprintf(" (%s)", [input.egress.resolution.error]) if {
	is_string(input.egress.resolution.error)
} else := ""

# -- egress.forbidden_range: multicast, reserved, unspecified: never, whatever the lists ------

egress_denials contains {
	"rule": "egress.forbidden_range",
	"reason": sprintf("%s is at %s: multicast, reserved and unspecified addresses are never reached, whatever the lists say", [egress_destination, concat(", ", sort(egress_forbidden_addresses))]),
} if {
	egress_decided
	count(egress_forbidden_addresses) > 0
}

# -- egress.internal_address: private, loopback, link-local, metadata, shared ----------------
#
# Only for a destination listed by its exact name (host, host:port or IP literal): a
# wildcard or "*" never opens an internal address, so a listed domain whose name someone
# points at 10.0.0.5 leads nowhere. A cloud metadata address is reached only by its own
# IP literal, listed as such: never through a name, however exactly listed, since whoever
# controls the name's DNS could point it there.

egress_denials contains {
	"rule": "egress.internal_address",
	"reason": sprintf("%s is at an internal address, %s: it is reached only when listed by its exact name (the identity's groups: %s); add \"%s\" (not a wildcard) to the allow or hold list of one of them or of \"*\" in %s", [
		egress_destination, concat(", ", sort(egress_internal_addresses)),
		egress_groups_text, egress_destination, egress_lists_file,
	]),
} if {
	egress_decided
	count(egress_internal_addresses) > 0
	not egress_named
}

egress_denials contains {
	"rule": "egress.internal_address",
	"reason": sprintf("%s is at a cloud metadata address, %s: it is reached only by that address itself, listed as an IP literal in %s", [
		egress_destination, concat(", ", sort(egress_metadata_addresses)), egress_lists_file,
	]),
} if {
	egress_decided
	count(egress_metadata_addresses) > 0
	not input.egress.literal == true
	egress_named # else the rule above refuses it already
}

egress_metadata_addresses contains egress_describe(a) if {
	some a in egress_addresses
	egress_range(a) == "metadata"
}

# -- egress.not_allowed: on no list of the identity's groups ----------------------------------

egress_denials contains {
	"rule": "egress.not_allowed",
	"reason": sprintf("%s%s is on no allow or hold list for this identity (its groups: %s): add \"%s\" to the allow list of one of them or of \"*\" (or to a hold list, to approve each request) in %s", [
		egress_destination, egress_at, egress_groups_text, egress_destination, egress_lists_file,
	]),
} if {
	egress_decided
	not egress_listed
}

# -- egress.held: on a hold list (and no allow list) -------------------------------------------

egress_holds contains {
	"rule": "egress.held",
	"reason": sprintf("%s%s is on a hold list for this identity (its groups: %s) in %s: each request to it waits for approval (put it on an allow list to let it through)", [
		egress_destination, egress_at, egress_groups_text, egress_lists_file,
	]),
	"approvers": egress_approvers,
	"seconds": egress_hold_seconds,
} if {
	egress_decided
	egress_on_hold
	not egress_allowed
	not egress_inspected_tunnel
}

# -- egress.first_seen: a listed destination this identity never reached -----------------------
#
# As the strictest `first_seen` of the identity's groups says: alert, hold or deny. A
# group without one adds none; any other value counts as deny. When the store of reached
# destinations cannot answer (seen.status "unknown"), a request `hold` or `deny` would
# stop is refused with 503 (fails closed, and the client may try again): whether it is a
# first one is unknown, and a store's outage is no question for an approver. An `alert`
# identity's request passes, and alerts as a first one.

egress_first_seen_ranks := {"alert": 1, "hold": 2, "deny": 3}

egress_first_seen := max(array.concat([0], [object.get(egress_first_seen_ranks, mode, 3) |
	some name in egress_groups
	mode := object.get(egress_table[name], "first_seen", null)
	mode != null
]))

egress_first_time if {
	egress_decided
	egress_listed
	not input.egress.seen.identity == true
}

egress_seen_unknown if input.egress.seen.status == "unknown"

egress_denials contains {
	"rule": "egress.first_seen",
	"reason": sprintf("whether %s reached %s before is unknown: the store of reached destinations does not answer, and a first request to a destination is %s (first_seen for its groups: %s, in %s); try again later", [
		activity_who, egress_destination, egress_first_seen_verb, egress_groups_text, egress_lists_file,
	]),
	"status": 503,
} if {
	egress_first_time
	egress_first_seen >= 2
	egress_seen_unknown
}

egress_first_seen_verb := "refused" if {
	egress_first_seen == 3
} else := "held for approval"

egress_denials contains {
	"rule": "egress.first_seen",
	"reason": sprintf("%s never reached %s before, and a first request to a destination is refused (first_seen \"deny\" for its groups: %s, in %s)", [
		activity_who, egress_destination, egress_groups_text, egress_lists_file,
	]),
} if {
	egress_first_time
	egress_first_seen == 3
	not egress_seen_unknown
}

egress_holds contains {
	"rule": "egress.first_seen",
	"reason": sprintf("%s never reached %s before: a first request to a destination waits for approval (first_seen \"hold\" for its groups: %s, in %s)", [
		activity_who, egress_destination, egress_groups_text, egress_lists_file,
	]),
	"approvers": egress_approvers,
	"seconds": egress_hold_seconds,
} if {
	egress_first_time
	egress_first_seen == 2
	not egress_seen_unknown
}

# Once per destination (`key`): tollgate deduplicates alerts per rule, identity and key.
# Only when the exchange goes through now: a refused one reached nothing, and a held one
# is let through by a person who saw it; and only on the decision with the addresses (a
# name is decided on first, before it is looked up, and may yet be refused for them).
egress_alerts contains {
	"rule": "egress.first_seen",
	"severity": "warning",
	"message": sprintf("%s reached %s for the first time", [activity_who, egress_destination]),
	"key": egress_destination,
} if {
	egress_first_time
	egress_first_seen == 1
	not input.egress.resolution.status == "pending"
	not outcome_refused
	not outcome_held
}

# -- egress.tunnel_to_target: a configured target is read, not tunnelled to --------------------

egress_denials contains {
	"rule": "egress.tunnel_to_target",
	"reason": sprintf("a CONNECT tunnel to %s is refused: it is the configured target %s, whose requests tollgate reads; send plain HTTP through the proxy (http://%s/...), or put it on an inspect list, so it can be read", [
		egress_destination, egress_target_name, egress_destination,
	]),
} if {
	egress_decided
	input.egress.scheme == "tunnel"
	input.egress.target != null
	not egress_inspected
}

egress_target_name := input.egress.target if {
	is_string(input.egress.target)
} else := "(unnamed)"

# -- egress.denied: on a deny list ----------------------------------------------------------
#
# Whatever else lists it: a wildcard or "*" that allows a domain does not reach what a
# group's deny list names below it.

egress_denials contains {
	"rule": "egress.denied",
	"reason": sprintf("%s%s is on a deny list for this identity (its groups: %s) in %s", [
		egress_destination, egress_at, egress_groups_text, egress_lists_file,
	]),
} if {
	egress_decided
	egress_refused
}

# -- Inspection: an HTTPS tunnel to a destination on an inspect list is read ------------------
#
# The CONNECT's decision carries "inspect": true (the terms of what passes, tollgate.rego):
# Envoy ends the tunnel's TLS with a certificate of tollgate's egress CA for the name the
# client asked for, and each request inside comes back to the policy as an exchange of
# its own (input.egress.scheme "https", input.egress.inspected true), decided and masked
# like any HTTP request. A hold list holds those requests, each seen by the approver,
# not the CONNECT, which shows nothing but a name.

egress_inspected_tunnel if {
	input.egress.scheme == "tunnel"
	egress_inspected
}

passing_terms contains ["inspect", true] if {
	egress_decided
	egress_inspected_tunnel
}

# A certificate is made for the name the client asks for (SNI); a client reaching an IP
# address asks for none.
egress_denials contains {
	"rule": "egress.inspect_address",
	"reason": sprintf("%s is on an inspect list, but it is an IP address: tollgate reads inside HTTPS only for a destination reached by its name (the certificate it shows names it); reach it by name, or list it on an allow list to tunnel it unread in %s", [
		egress_destination, egress_lists_file,
	]),
} if {
	egress_decided
	egress_inspected_tunnel
	input.egress.literal == true
}

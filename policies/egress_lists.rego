# Where agents may go through the egress proxy (egress.rego's rules), as data: edit the
# lists here, not the rules. The rules read `data.tollgate.egress`, so a test sets other
# lists with `with data.tollgate.egress as {...}`. It is one complete object, as the pack's
# other tables are: the compiled program tollgate runs takes no object built key by key
# across files.
#
# "groups" maps an identity group (a name in the token's groups claim) to its lists; the
# group "*" applies to every identity. An identity gets the lists of all its groups and
# of "*" together. A group's keys:
# - "allow": destinations its members reach. An entry is a host ("pypi.org", any port),
#   host:port ("pypi.org:443"), a wildcard ("*.pythonhosted.org", any name below the
#   domain, not the domain itself, at any port; "*.pythonhosted.org:443" at that port),
#   an IP literal ("203.0.113.7", "203.0.113.7:443", "2001:db8::7", "[2001:db8::7]:443"),
#   or "*" (any public destination). Lower-case, no trailing dot.
# - "hold": destinations whose every request waits for an approver instead (an entry of
#   "allow" wins over one of "hold"). For a destination also on "inspect", the requests
#   inside its HTTPS tunnels are held, each seen by the approver, not the tunnel.
# - "inspect": destinations reached as if allowed, whose HTTPS tunnels tollgate reads:
#   it ends their TLS with a certificate of its egress CA (which the agents' clients
#   trust: `tollgate egress ca`), decides each request inside, masks each answer, and
#   reaches the destination over TLS verified against the system's roots. An entry here
#   wins over one of "allow" (reading is the stricter). Names only: an IP address is
#   refused, as no certificate can be asked for it.
# - "deny": destinations refused whatever the other lists say ("*" on "allow" but a
#   paste site on "deny").
# - "first_seen": what happens the first time an identity reaches a destination it never
#   reached before: "alert" (let through, with an alert), "hold" (wait for an approver)
#   or "deny". The strictest of the identity's groups applies; a group without it adds
#   none; any other value counts as "deny".
# A destination at an internal address (private, loopback, link-local, metadata, shared)
# passes only if an entry names it exactly: its host, host:port or IP literal, never a
# wildcard or "*". Multicast, reserved and unspecified addresses never pass.
# "approvers" approve egress holds; "hold_seconds" is how long a held request waits.
package tollgate

import rego.v1

egress := {
	"groups": {
		# The Python package index, for agents that install packages.
		"agents": {
			"allow": ["pypi.org:443", "files.pythonhosted.org:443"],
			"hold": [],
			"inspect": [],
			"deny": [],
			"first_seen": "alert",
		},
	},
	"approvers": ["group:security"],
	"hold_seconds": 300,
}

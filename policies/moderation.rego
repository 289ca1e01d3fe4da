# Moderated targets: the sessions on a target labelled `moderated: "true"` go on only
# while a moderator attends them (a person of the config's `sessions.moderators`,
# watching or joined through `tollgate sessions watch|join` or the recordings page, on
# any replica). Every decision that lets an exchange through there says so
# (`"moderated": true`): tollgate holds the exchange until a moderator is present, at
# most 300 s, then refuses it (`moderator_absent`). A database login goes on; its
# statements wait. On a Kubernetes target the terminals are moderated, not the API's
# other calls. docs/operators/live-sessions.md says how it looks to each client.
#
# For example, in the config:
#   targets:
#     - name: web-1
#       protocol: ssh
#       labels: {moderated: "true"}
package tollgate

import rego.v1

moderated_target if {
	input.target.labels.moderated == "true"
	session_exchange
}

# What a moderator attends: on a Kubernetes target, its terminals (an exec or attach
# stream, and the lines typed in it, read with the stream's verb); the API's other calls
# (kubectl's discovery, reads, applies) are no session of anyone's and are decided as on
# any target.
session_exchange if input.target.protocol != "k8s"

session_exchange if input.k8s.verb in {"exec", "attach"}

# A decision that passes, as the target asks: moderated or not.
with_moderator(d) := object.union(d, {"moderated": true}) if {
	moderated_target
} else := d

# Moderated targets: the sessions on a target labelled `moderated: "true"` go on only
# while a moderator attends them (a person of the config's `sessions.moderators`,
# watching or joined through `tollgate sessions watch|join` or the recordings page, on
# any replica). Every decision that lets an exchange through there says so
# (`"moderated": true`): tollgate holds the exchange until a moderator is present, at
# most 300 s, then refuses it (`moderator_absent`). A database login goes on; its
# statements wait. docs/operators/live-sessions.md says how it looks to each client.
#
# For example, in the config:
#   targets:
#     - name: web-1
#       protocol: ssh
#       labels: {moderated: "true"}
package tollgate

import rego.v1

moderated_target if input.target.labels.moderated == "true"

# A decision that passes, as the target asks: moderated or not.
with_moderator(d) := object.union(d, {"moderated": true}) if {
	moderated_target
} else := d

# Which holds open a window once approved, as data: a rule's name and for how many
# minutes (1-1440) the requester's requests on that target held for that rule alone pass
# (a shell's lines: in that same session only, as sudo remembers a terminal). A request
# held for another rule too waits as ever. Edit the table, not the rules. As shipped, a
# privileged shell command (sudo, su, systemctl restart...) approved lets that session's
# next ones through for 15 minutes, as sudo's own timestamp does; every other hold lets
# its one request through.
package tollgate

import rego.v1

grant_minutes_by_rule := {"ssh.privileged_command": 15}

# Who acts, as the groups of their verified token (input.identity.groups); the
# other files of the pack branch on these names.
package tollgate

import rego.v1

groups := input.identity.groups if {
	is_array(input.identity.groups)
} else := []

agent if "agents" in groups

dba if "dba" in groups

# `x` if it is an array, else an empty one: `some v in array_or_empty(x)` iterates an
# array only, whatever shape a hand-built input gives x.
array_or_empty(x) := x if {
	is_array(x)
} else := []

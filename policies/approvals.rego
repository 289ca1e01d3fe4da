# Which holds need more than one approver (two-person approval), as data: a rule's name
# and how many distinct approvers must approve what it holds, 2 to 5. Edit the table,
# not the rules. As shipped, two people decide a write the database measured changing
# more than blast_limits' `large_rows` (10,000) rows of a table; one approver decides
# every other hold.
#
# For example, two people for an unbounded write too, and three for a change of roles:
#   approvals_needed_by_rule := {"blast.large_effect": 2, "sql.unbounded_write": 2,
#                                "k8s.privilege_change": 3}
#
# A held request needs as many approvers as the most demanding of the rules that hold it;
# one denial denies it, nobody approves it twice, and its requester never.
package tollgate

import rego.v1

approvals_needed_by_rule := {"blast.large_effect": 2}

# Which holds need more than one approver (two-person approval), as data: a rule's name
# and how many distinct approvers must approve what it holds, 2 to 5. Edit the table,
# not the rules. Empty, as shipped: one approver decides every hold.
#
# For example, two people for a write the planner estimates large, and for an exec into
# a production pod:
#   approvals_needed_by_rule := {"blast.share_of_table": 2, "k8s.exec_in_production": 2}
#
# A held request needs as many approvers as the most demanding of the rules that hold it;
# one denial denies it, nobody approves it twice, and its requester never.
package tollgate

import rego.v1

approvals_needed_by_rule := {}

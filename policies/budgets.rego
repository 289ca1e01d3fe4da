# Budgets (input.budget: extproc/activity/budgets.py): what each identity, group, target
# or MCP tool may use in a window (calls, LLM tokens, their cost), as configured under
# `budgets` in tollgate's config. Tollgate reserves the exchange's estimate before this
# decision, atomically across replicas, and tells the outcome: `reserved` (every budget
# had room), `exceeded` (one would pass a limit: nothing was taken) or `unknown` (the
# store did not answer). An exceeded budget is refused with 429 and when it renews; an
# unknown one with 503, for a budget that cannot be counted cannot be kept.
#
# input.budget is null where no budget counts the exchange (and in a hand-built input,
# a what-if replay): nothing here fires. Every rule is of the decision's live part
# (tollgate.rego): the input changes from one exchange to the next.
package tollgate

import rego.v1

live_denials contains {
	"rule": "budget.exceeded",
	"reason": budget_reason(b),
	"status": 429,
} if {
	input.budget.status == "exceeded"
	is_array(input.budget.budgets)
	some b in input.budget.budgets
	is_array(b.exceeded)
	count(b.exceeded) > 0
}

live_denials contains {
	"rule": "budget.unknown",
	"reason": "the budgets this request counts against cannot be read (the store did not answer); it is refused until they can: try again later",
	"status": 503,
} if {
	input.budget.status == "unknown"
}

budget_reason(b) := sprintf("budget %s (%s) is spent: %s in the %s window; it renews at %s", [
	b.name, b.key, concat(", ", [budget_use(b, m) | some m in b.exceeded]), b.window, b.renews,
])

budget_use(b, "cost") := sprintf("cost %v of %v used, %v more asked", [b.used.cost, b.limit.cost, input.budget.asked.cost])

budget_use(b, m) := sprintf("%s %d of %d used, %d more asked", [m, b.used[m], b.limit[m], input.budget.asked[m]]) if m != "cost"

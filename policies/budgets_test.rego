# Unit tests of budgets.rego, on input.budget as extproc/activity/budgets.py fills it.
package tollgate_budgets_test

import rego.v1

# A GET to the http target crm by an agent, with `budget` as its input.budget.
asking(budget) := {
	"phase": "request",
	"identity": {"authenticated": true, "sub": "agent-7", "iss": "", "aud": [], "email": null, "groups": ["agents"], "jti": "t-1"},
	"target": {"name": "crm", "protocol": "http", "environment": "prod", "labels": {}},
	"request": {"method": "GET", "path": "/api/orders", "query": {}, "headers": {}, "body": null},
	"response": null, "sql": null, "k8s": null, "llm": null, "mcp": null, "postgres": null,
	"approval": null, "source": null, "activity": null, "budget": budget,
}

tool_calls(used, exceeded) := {
	"name": "tool-calls", "key": "identity=agent-7", "window": "1h", "window_start": 1800000000,
	"renews": "2027-01-15T09:00:00Z", "limit": {"calls": 100, "tokens": null, "cost": null},
	"used": used, "exceeded": exceeded,
}

spend(used, exceeded) := {
	"name": "spend", "key": "group=agents", "window": "1d", "window_start": 1799971200,
	"renews": "2027-01-16T00:00:00Z", "limit": {"calls": null, "tokens": null, "cost": 2.5},
	"used": used, "exceeded": exceeded,
}

asked := {"calls": 1, "tokens": 900, "cost": 0.0045}

test_a_reserved_budget_passes if {
	budget := {"status": "reserved", "asked": asked, "budgets": [tool_calls({"calls": 12, "tokens": 0, "cost": 0}, [])]}
	data.tollgate.decision.action == "allow" with input as asking(budget)
}

test_no_budget_counts_nothing if {
	data.tollgate.decision.action == "allow" with input as asking(null)
}

test_an_exceeded_budget_is_refused_with_429_saying_which_and_when_it_renews if {
	budget := {"status": "exceeded", "asked": asked, "budgets": [
		tool_calls({"calls": 100, "tokens": 0, "cost": 0}, ["calls"]),
		spend({"calls": 40, "tokens": 30000, "cost": 1.25}, []),
	]}
	d := data.tollgate.decision with input as asking(budget)
	d.action == "deny"
	d.status == 429
	d.rules == ["budget.exceeded"]
	d.reasons == ["budget tool-calls (identity=agent-7) is spent: calls 100 of 100 used, 1 more asked in the 1h window; it renews at 2027-01-15T09:00:00Z"]
}

test_a_cost_budget_names_the_cost if {
	budget := {"status": "exceeded", "asked": asked, "budgets": [spend({"calls": 40, "tokens": 30000, "cost": 2.4999}, ["cost"])]}
	d := data.tollgate.decision with input as asking(budget)
	d.reasons == ["budget spend (group=agents) is spent: cost 2.4999 of 2.5 used, 0.0045 more asked in the 1d window; it renews at 2027-01-16T00:00:00Z"]
}

test_an_unknown_budget_is_refused_with_503 if {
	budget := {"status": "unknown", "asked": asked, "budgets": [tool_calls(null, [])]}
	d := data.tollgate.decision with input as asking(budget)
	d.action == "deny"
	d.status == 503
	d.rules == ["budget.unknown"]
}

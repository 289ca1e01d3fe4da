# Unit tests of http.rego.
package tollgate_http_test

import rego.v1

call(method, labels) := {"phase": "request", "identity": {"groups": ["agents"]},
	"target": {"name": "api", "protocol": "http", "labels": labels},
	"request": {"method": method, "path": "/things", "query": {}, "headers": {}, "body": null}}

test_writes_to_a_read_only_target_are_denied if {
	every method in ["POST", "PUT", "PATCH", "DELETE"] {
		d := data.tollgate.decision with input as call(method, {"access": "read-only"})
		d.rules == ["http.read_only"]
		d.reasons == [sprintf("%s on a read-only target", [method])]
	}
}

test_reads_of_a_read_only_target_are_allowed if {
	every method in ["GET", "HEAD", "OPTIONS"] {
		data.tollgate.decision.action == "allow" with input as call(method, {"access": "read-only"})
	}
}

test_writes_to_other_targets_are_allowed if {
	data.tollgate.decision.action == "allow" with input as call("POST", {})
}

# Generic HTTP, whatever the protocol: targets labelled read-only take no writes.
package tollgate

import rego.v1

read_only_target if input.target.labels.access == "read-only"

denials contains {"rule": "http.read_only", "reason": sprintf("%s on a read-only target", [method])} if {
	read_only_target
	method := request_method
	not method in {"GET", "HEAD", "OPTIONS"}
	not carries_sql # SQL is judged by its statements (sql.read_only)
	not input.target.protocol in {"postgres", "mysql"} # no HTTP method: statements only
}

# A Kubernetes session (exec, attach, port-forward, proxy) starts with a GET: it is no read.
denials contains {"rule": "http.read_only", "reason": sprintf("%s on a read-only target", [input.k8s.verb])} if {
	read_only_target
	input.k8s.verb in {"exec", "attach", "portforward", "proxy"}
}

# A write whose body carries no SQL is not judged by statements its query string holds.
carries_sql if {
	count(input.sql.statements) > 0
	not input.sql.unread_write == true
}

request_method := input.request.method if {
	is_string(input.request.method)
} else := "(no method)"

request_path := input.request.path if {
	is_string(input.request.path)
} else := "(no path)"

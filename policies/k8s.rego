# The Kubernetes API (targets of protocol k8s): decided on the call as the API
# server reads it — input.k8s: verb, resource, namespace, name, the exec argv and the
# commands it runs — and the namespace's labels from tollgate's config.
package tollgate

import rego.v1

denials contains {"rule": "k8s.unreadable", "reason": sprintf("unreadable Kubernetes request: %v", [input.k8s.error])} if {
	input.k8s.error != null
}

# A Kubernetes target whose request arrives without the interpreter's reading.
denials contains {"rule": "k8s.unread", "reason": "the Kubernetes request was not read (input.k8s missing)"} if {
	input.target.protocol == "k8s"
	not k8s_read
}

k8s_read if is_object(input.k8s)

# No shell into production for agents: exec, attach and port-forward are sessions
# whose commands tollgate sees only at the start.
denials contains {
	"rule": "k8s.production_session",
	"reason": sprintf("%s into production namespace %s", [session, input.k8s.namespace]),
} if {
	agent
	some session in production_session(input.k8s)
	input.k8s.namespace_labels.environment == "production"
}

# What kind of session a call opens in a pod: exec, attach, portforward, or a debug
# container (an ephemeral container, kubectl debug: a new process with any command).
production_session(k8s) := {k8s.verb} if {
	k8s.verb in {"exec", "attach", "portforward"}
} else := {"debug container"} if {
	k8s.subresource == "ephemeralcontainers"
	k8s.verb in {"update", "patch"}
} else := set()

# A command run in a container (kubectl exec) is judged as a model's tool call is: read
# as a shell runs it (`sh -c '...'` unwrapped) and refused when destructive (shell.rego),
# in every namespace, to everyone. An interactive shell (`-- sh`) is a session: what it
# reads from stdin passes unread, and agents open none in production.
denials contains {
	"rule": "k8s.destructive_exec",
	"reason": sprintf("destructive command in exec: %s", [concat(" ", argv)]),
} if {
	some argv in argvs(exec_commands)
	destructive_command(argv)
}

# The exec's commands as the interpreter read them; without that reading (an older
# tollgate, a hand-built input), the argv as sent.
exec_commands := input.k8s.exec.commands if {
	is_array(input.k8s.exec.commands)
} else := [input.k8s.exec.command]

# A node's proxy reaches the kubelet's own API: /exec, /run, /attach into any pod of the
# node, whatever its namespace. No agent goes there.
denials contains {"rule": "k8s.node_proxy", "reason": "the kubelet API through nodes/proxy"} if {
	agent
	input.k8s.resource == "nodes"
	input.k8s.verb == "proxy"
}

# Agents never read secrets: a list or a watch returns their values too, and so does
# the answer to an update, a patch or a delete (even a dry run). Creating one reads none.
denials contains {"rule": "k8s.secrets", "reason": sprintf("%s secrets", [input.k8s.verb])} if {
	agent
	input.k8s.resource == "secrets"
	input.k8s.verb != "create"
}

# Deleting a namespace deletes everything in it: for no one through this gateway.
denials contains {"rule": "k8s.namespace_delete", "reason": "namespace deletion"} if {
	input.k8s.resource == "namespaces"
	input.k8s.verb in {"delete", "deletecollection"}
}

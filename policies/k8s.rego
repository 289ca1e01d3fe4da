# The Kubernetes API (targets of protocol k8s): decided on the call as the API
# server reads it — input.k8s: verb, resource, namespace, name, the exec argv and the
# commands it runs — and the namespace's labels from tollgate's config.
package tollgate

import rego.v1

denials contains {"rule": "k8s.unreadable", "reason": sprintf("unreadable Kubernetes request: %v", [input.k8s.error])} if {
	input.k8s.error != null
}

# A write of a pod spec whose body cannot be read (protobuf, which `kubectl create
# deployment` sends; an unknown patch type; no body read): what it runs and mounts is
# unknown, so an agent may not make it. A person's write passes: no rule for them needs it.
denials contains {
	"rule": "k8s.unread_workload",
	"reason": sprintf("%s of %s: what it puts in the pod cannot be read: %v", [input.k8s.verb, input.k8s.resource, input.k8s.object.error]),
} if {
	agent
	is_string(input.k8s.object.error)
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
	"reason": sprintf("destructive command in exec: %s", [what]),
} if {
	some what in destructive_exec
}

destructive_exec contains concat(" ", argv) if {
	some argv in argvs(exec_commands)
	destructive_command(argv)
}

destructive_exec contains sprintf("%s (%s)", [concat(" ", o.argv), o.why]) if {
	some o in opaques(input.k8s.exec.opaque)
	destructive_opaque(o)
}

destructive_exec contains sprintf("output written to %s", [path]) if {
	some path in array_or_empty(input.k8s.exec.writes)
	is_string(path)
	destructive_write(path)
}

# An exec that reads or writes a credential file in the container (credentials.rego): the
# service account's token, a kubeconfig, a .env. kubectl cp is such an exec of tar
# (`tar cf - /var/run/secrets/...` to copy out, `tar xmf - -C DIR` to copy in).
denials contains {
	"rule": "k8s.credential_exec",
	"reason": sprintf("exec: %s", [what]),
} if {
	is_object(input.k8s.exec)
	exec := input.k8s.exec
	some what in credentials_in_commands(exec_commands, object.get(exec, "opaque", []), object.get(exec, "writes", []), array_or_empty(object.get(exec, "command", [])), false)
}

# An exec that runs what cannot be read (`sh -c "$(curl ...)"`, `python -c ...`, a script
# piped into a shell) waits for a human when an agent asks, as a model's tool call does
# (llm.opaque_tool_call); here the hold is in time: nothing has run yet.
holds contains {
	"rule": "k8s.opaque_exec",
	"reason": sprintf("exec runs what cannot be read (%s): %s", [o.why, concat(" ", o.argv)]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	agent
	some o in opaques(input.k8s.exec.opaque)
	opaque_held(o)
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

# A TokenRequest (serviceaccounts/token, kubectl create token) answers with a new
# credential of the service account: a secret read.
denials contains {"rule": "k8s.secrets", "reason": "create serviceaccounts/token"} if {
	agent
	input.k8s.resource == "serviceaccounts"
	input.k8s.subresource == "token"
}

# A pod that mounts a Secret (a volume, a projected source, an env var or envFrom) can
# print it: writing one is a secret read, in every namespace. input.k8s.object is what
# the write's body puts in the pod spec (a patch: what it adds).
denials contains {
	"rule": "k8s.secret_mount",
	"reason": sprintf("%s %s mounts secret %s", [input.k8s.object.kind, object_name, secret]),
} if {
	agent
	some secret in input.k8s.object.pod.secrets
}

# Creating, replacing or patching the pod spec of a workload (Pod, Job, CronJob, the pod
# template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController)
# runs the image and command the caller chose: as exec is, refused to agents in
# production. A write that leaves the pod spec alone (scale, labels, a rollout
# restart's template annotation) runs nothing new.
denials contains {
	"rule": "k8s.production_workload",
	"reason": sprintf("%s of %s %s in production namespace %s", [
		input.k8s.verb, input.k8s.object.kind,
		object_name, input.k8s.namespace,
	]),
} if {
	agent
	input.k8s.subresource == null # a debug container is k8s.production_session's
	input.k8s.object.pod != null
	input.k8s.namespace_labels.environment == "production"
}

# The written object's name, from the path, else the body; "(unnamed)" when neither has it
# (generateName).
object_name := input.k8s.name if {
	is_string(input.k8s.name)
} else := input.k8s.object.name if {
	is_string(input.k8s.object.name)
} else := "(unnamed)"

# Deleting a namespace deletes everything in it: for no one through this gateway.
denials contains {"rule": "k8s.namespace_delete", "reason": "namespace deletion"} if {
	input.k8s.resource == "namespaces"
	input.k8s.verb in {"delete", "deletecollection"}
}

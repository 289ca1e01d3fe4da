# The Kubernetes API (targets of protocol k8s): decided on the call as the API
# server reads it — input.k8s: verb, resource, namespace, name, the exec argv and the
# commands it runs — and the namespace's labels from tollgate's config.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (k8s_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
k8s_exchange if input.target.protocol == "k8s"

k8s_exchange if input.k8s != null

denials contains x if {
	k8s_exchange
	some x in k8s_denials
}

holds contains x if {
	k8s_exchange
	some x in k8s_holds
}

k8s_denials contains {"rule": "k8s.unreadable", "reason": sprintf("unreadable Kubernetes request: %v", [input.k8s.error])} if {
	input.k8s.error != null
}

# A write of a pod spec whose body cannot be read (protobuf, which `kubectl create
# deployment` sends; an unknown patch type; no body read): what it runs and mounts is
# unknown, so an agent may not make it. A person's write passes: no rule for them needs it.
k8s_denials contains {
	"rule": "k8s.unread_workload",
	"reason": sprintf("%s of %s: what it puts in the pod cannot be read: %v", [input.k8s.verb, input.k8s.resource, input.k8s.object.error]),
} if {
	agent
	is_string(input.k8s.object.error)
	not rbac_call # what it grants cannot be read: k8s.privilege's
}

# A Kubernetes target whose request arrives without the interpreter's reading.
k8s_denials contains {"rule": "k8s.unread", "reason": "the Kubernetes request was not read (input.k8s missing)"} if {
	input.target.protocol == "k8s"
	not k8s_read
}

k8s_read if is_object(input.k8s)

# No shell into production for agents: exec, attach and port-forward are sessions
# whose commands tollgate sees only at the start.
k8s_denials contains {
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
k8s_denials contains {
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
	destroying_write(path)
}

# An exec that reads or writes a credential file in the container (credentials.rego): the
# service account's token, a kubeconfig, a .env. kubectl cp is such an exec of tar
# (`tar cf - /var/run/secrets/...` to copy out, `tar xmf - -C DIR` to copy in).
k8s_denials contains {
	"rule": "k8s.credential_exec",
	"reason": sprintf("exec: %s", [what]),
} if {
	is_object(input.k8s.exec)
	exec := input.k8s.exec
	some what in credentials_in_commands(exec_commands, object.get(exec, "opaque", []), object.get(exec, "writes", []), array_or_empty(object.get(exec, "command", [])), false)
}

# A line typed into an exec or attach session, which the stream front decides before the
# pod receives it, that is not what the pod's shell would run as typed (an editing key
# tollgate does not model, an open quote, a heredoc): as an SSH session's (ssh.rego).
k8s_denials contains {
	"rule": "k8s.unreadable_line",
	"reason": sprintf("a line tollgate cannot read as the pod's shell would: %s", [why]),
} if {
	is_string(input.k8s.exec.line)
	input.k8s.exec.readable == false
	why := object.get(input.k8s.exec, "unreadable", null)
}

# kubectl cp's files, each decided before any of its bytes pass, as SFTP's paths are
# (ssh.rego): no secret or credential file copied out of a pod, nothing copied over a
# system path, a secret or a credential, no link or path that leaves the folder copied to,
# no link to a secret or a system file. A path relative to a folder tollgate does not
# know (tar run where the container starts) is judged as if under /.
k8s_denials contains {
	"rule": "k8s.cp_credential",
	"reason": sprintf("kubectl cp download of %s: %s", [file.path, what]),
} if {
	file := input.k8s.exec.file
	file.direction == "download"
	what := copied_secret(file.path)
	what != null
}

k8s_denials contains {
	"rule": "k8s.cp_system_write",
	"reason": sprintf("kubectl cp upload of %s: %s", [file.path, what]),
} if {
	file := input.k8s.exec.file
	file.direction == "upload"
	is_string(file.path)
	what := sftp_protected(resolved_path(file.path))
	what != null
}

k8s_denials contains {
	"rule": "k8s.cp_escape",
	"reason": sprintf("kubectl cp upload of %s: %s", [file.path, what]),
} if {
	file := input.k8s.exec.file
	file.direction == "upload"
	some what in copy_escapes(file)
}

copied_secret(path) := "a secret" if {
	secret_path(resolved_path(path))
} else := sprintf("a credential (%s)", [kinds]) if {
	kinds := concat(", ", sort([hit.kind | some hit in credentials_in_path(path)]))
	kinds != ""
} else := null

copy_escapes(file) := {what |
	some what in ["a path through ..", "a link that leaves the folder"]
	copy_escape(file, what)
} | {sprintf("a link to %s, %s", [file.target, what]) |
	# A link to a secret or a system file gives it a second name, which a later read or
	# write through the link would not be judged by.
	file.type in {"symlink", "hardlink"}
	is_string(file.target)
	some what in [copied_secret(file.target), sftp_protected(resolved_path(file.target))]
	what != null
}

copy_escape(file, "a path through ..") if ".." in split(file.path, "/")

copy_escape(file, "a link that leaves the folder") if {
	file.type in {"symlink", "hardlink"}
	is_string(file.link)
	link_leaves(file.link)
}

link_leaves(link) if startswith(link, "/")

link_leaves(link) if ".." in split(link, "/")

# An exec that runs what cannot be read (`sh -c "$(curl ...)"`, `python -c ...`, a script
# piped into a shell) waits for a human when an agent asks, as a model's tool call does
# (llm.opaque_tool_call); here the hold is in time: nothing has run yet.
k8s_holds contains {
	"rule": "k8s.opaque_exec",
	"reason": sprintf("exec runs what cannot be read (%s): %s", [o.why, concat(" ", o.argv)]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	agent
	some o in opaques(input.k8s.exec.opaque)
	opaque_held(o)
}

# A write to a file that steers what later lines run (shell.rego's state_file), as over SSH.
k8s_holds contains {
	"rule": "k8s.state_file_write",
	"reason": sprintf("exec writes a file that changes what later commands run: %s", [path]),
	"approvers": ["group:dba"],
	"seconds": 300,
} if {
	agent
	some path in array_or_empty(input.k8s.exec.writes)
	is_string(path)
	state_file(path)
	not opaque_allowed
}

# The exec's commands as the interpreter read them; without that reading (an older
# tollgate, a hand-built input), the argv as sent.
exec_commands := input.k8s.exec.commands if {
	is_array(input.k8s.exec.commands)
} else := [input.k8s.exec.command]

# A node's proxy reaches the kubelet's own API: /exec, /run, /attach into any pod of the
# node, whatever its namespace. No agent goes there.
k8s_denials contains {"rule": "k8s.node_proxy", "reason": "the kubelet API through nodes/proxy"} if {
	agent
	input.k8s.resource == "nodes"
	input.k8s.verb == "proxy"
}

# Agents never read secrets: a list or a watch returns their values too, and so does
# the answer to an update, a patch or a delete (even a dry run). Creating one reads none.
k8s_denials contains {"rule": "k8s.secrets", "reason": sprintf("%s secrets", [input.k8s.verb])} if {
	agent
	input.k8s.resource == "secrets"
	input.k8s.verb != "create"
}

# A TokenRequest (serviceaccounts/token, kubectl create token) answers with a new
# credential of the service account: a secret read.
k8s_denials contains {"rule": "k8s.secrets", "reason": "create serviceaccounts/token"} if {
	agent
	input.k8s.resource == "serviceaccounts"
	input.k8s.subresource == "token"
}

# A pod that mounts a Secret (a volume, a projected source, an env var or envFrom) can
# print it: writing one is a secret read, in every namespace. input.k8s.object is what
# the write's body puts in the pod spec (a patch: what it adds).
k8s_denials contains {
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
k8s_denials contains {
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

# A pod that reaches the node or more than its own container — a privileged container, a
# host path, the host's network, processes or IPC, a capability a runtime does not give
# every container, a service account of its own (whose token may hold any role: the
# gateway cannot read what it is bound to) — is a way out of the namespace: an agent's
# waits for a cluster admin, in every namespace. A target labelled
# `k8s-privileged-pods: allow` lets them through; `k8s-service-accounts: "ci,builder"`
# names the service accounts a pod of an agent may run as there.
k8s_holds contains {
	"rule": "k8s.privileged_pod",
	"reason": sprintf("%s of %s %s%s: %s", [
		input.k8s.verb, input.k8s.object.kind, object_name, k8s_where,
		concat(", ", sort(pod_privileges)),
	]),
	"approvers": ["group:cluster-admins"],
	"seconds": 300,
} if {
	agent
	not cluster_admin
	count(pod_privileges) > 0
	not input.target.labels["k8s-privileged-pods"] == "allow"
	not input.k8s.dry_run == true
}

pod_privileges contains "a privileged container" if input.k8s.object.pod.privileged == true

pod_privileges contains sprintf("host path %s", [path]) if {
	some path in input.k8s.object.pod.host_paths
}

pod_privileges contains "the host's network" if input.k8s.object.pod.host_network == true

pod_privileges contains "the host's processes" if input.k8s.object.pod.host_pid == true

pod_privileges contains "the host's IPC" if input.k8s.object.pod.host_ipc == true

pod_privileges contains sprintf("capability %s", [name]) if {
	some name in input.k8s.object.pod.capabilities
}

pod_privileges contains sprintf("service account %s", [account]) if {
	account := input.k8s.object.pod.service_account
	is_string(account)
	account != "default"
	not account in allowed_service_accounts
}

allowed_service_accounts contains trim_space(name) if {
	some name in split(input.target.labels["k8s-service-accounts"], ",")
}

# The written object's name, from the path, else the body; "(unnamed)" when neither has it
# (generateName).
object_name := input.k8s.name if {
	is_string(input.k8s.name)
} else := input.k8s.object.name if {
	is_string(input.k8s.object.name)
} else := "(unnamed)"

# Deleting a namespace deletes everything in it: for no one through this gateway.
k8s_denials contains {"rule": "k8s.namespace_delete", "reason": "namespace deletion"} if {
	input.k8s.resource == "namespaces"
	input.k8s.verb in {"delete", "deletecollection"}
}

# -- what a call does: effects and scope -------------------------------------------------
# The interpreter classifies each call as it does SQL statements (extproc/interpret/k8s.py):
# read, write, destroy, privilege, runs_code, connect, unknown, and how far it reaches
# (input.k8s.scope: object, collection, namespace, cluster). What a write's body adds is
# in input.k8s.object.effects (a patch that rewrites a pod spec runs code).

# The group that administers clusters: it may grant what no one else may through here.
cluster_admin if "cluster-admins" in groups

# Impersonate-User, -Group, -Uid and -Extra-<key> (in any case, as HTTP names go) make the
# API server act as someone else with the gateway's credential: what is decided and
# recorded here would not be who acts. Refused to everyone: tollgate also strips them
# (extproc/credentials.py), and a request stripped of them would run as the gateway
# itself, with more than its caller asked for. X-Impersonate-User and the like are not
# read by the API server, and pass.
k8s_denials contains {
	"rule": "k8s.impersonation",
	"reason": sprintf("impersonation headers %s: the API server would act as someone else with the gateway's credential", [concat(", ", sort(impersonation_headers))]),
} if {
	input.target.protocol == "k8s"
	count(impersonation_headers) > 0
}

impersonation_headers contains name if {
	is_object(input.request.headers)
	some header, _ in input.request.headers
	name := lower(header)
	impersonating(name)
}

impersonating(name) if name in {"impersonate-user", "impersonate-group", "impersonate-uid"}

impersonating(name) if startswith(name, "impersonate-extra-")

# An RBAC write that escalates (input.k8s.object.grants: a binding of cluster-admin, admin
# or a system: ClusterRole, or of anything to every authenticated user; a rule granting
# escalate, bind, impersonate, `*` verbs or every resource; aggregation), or whose body
# cannot be read: for the cluster-admins group only, as SQL privileges are the dba
# group's. The API server lets the gateway's credential grant all it holds. A dry run
# (dryRun=All, which create, update and patch take from the query only) grants nothing.
k8s_denials contains {
	"rule": "k8s.privilege",
	"reason": sprintf("%s of %s %s: %s", [input.k8s.verb, input.k8s.object.kind, object_name, grant]),
} if {
	rbac_write
	not cluster_admin
	some grant in array_or_empty(input.k8s.object.grants)
	is_string(grant)
}

k8s_denials contains {
	"rule": "k8s.privilege",
	"reason": sprintf("%s of %s: what it grants cannot be read: %s", [input.k8s.verb, input.k8s.resource, unread_grant]),
} if {
	rbac_write
	not cluster_admin
	not grants_read
}

# (Negated as rules: OPA and regorus differ on `not is_array(input.k8s.object.grants)`
# when the object is null.)
grants_read if is_array(input.k8s.object.grants)

rbac_resources := {"roles", "clusterroles", "rolebindings", "clusterrolebindings"}

rbac_call if input.k8s.resource in rbac_resources

rbac_write if {
	rbac_call
	input.k8s.verb in {"create", "update", "patch"}
	not input.k8s.dry_run == true
}

unread_grant := input.k8s.object.error if {
	is_string(input.k8s.object.error)
} else := "the body was not read"

# Any other change of who may do what (a Role, a binding of another role), of what the
# API server admits (an admission webhook or policy), or a credential made (a certificate
# approved, a service account's token): an agent's waits for a cluster admin.
k8s_holds contains {
	"rule": "k8s.privilege_change",
	"reason": sprintf("%s of %s%s%s: %s", [
		input.k8s.verb, k8s_what, k8s_named, k8s_where,
		object.get(privilege_whys, input.k8s.resource, "changes privileges"),
	]),
	"approvers": ["group:cluster-admins"],
	"seconds": 300,
} if {
	agent
	not cluster_admin
	"privilege" in k8s_effects
	not input.k8s.dry_run == true
}

privilege_whys := {
	"roles": "changes who may do what",
	"clusterroles": "changes who may do what",
	"rolebindings": "changes who may do what",
	"clusterrolebindings": "changes who may do what",
	"mutatingwebhookconfigurations": "changes what the API server admits",
	"validatingwebhookconfigurations": "changes what the API server admits",
	"validatingadmissionpolicies": "changes what the API server admits",
	"validatingadmissionpolicybindings": "changes what the API server admits",
	"mutatingadmissionpolicies": "changes what the API server admits",
	"mutatingadmissionpolicybindings": "changes what the API server admits",
	"certificatesigningrequests": "approves a certificate, a credential for the user it names",
	"serviceaccounts": "issues a credential of the service account",
}

# Deleting what takes much with it, cluster-wide (scope cluster: a CustomResourceDefinition,
# a PersistentVolume, a Node, a StorageClass, an admission configuration, an APIService, a
# ClusterRole or ClusterRoleBinding, every object of a resource across the cluster): not
# for agents. A dry run is no exception: a DELETE's options come from its body when it has
# one, and the API server then ignores dryRun in the query.
k8s_denials contains {
	"rule": "k8s.cluster_destroy",
	"reason": cluster_destroy_words,
} if {
	agent
	"destroy" in k8s_effects
	input.k8s.scope == "cluster"
	input.k8s.resource != "namespaces" # k8s.namespace_delete's, for everyone
}

# "delete Node n1: it takes its pods with it", "delete every Node: each takes ...".
cluster_destroy_words := sprintf("%s: %s %s", [destroy_words, it_or_each, cluster_losses[input.k8s.resource]]) if {
	cluster_losses[input.k8s.resource]
} else := sprintf("%s across the cluster", [destroy_words])

it_or_each := "it" if is_string(input.k8s.name) else := "each"

cluster_losses := {
	"customresourcedefinitions": "deletes every object of its kind, in every namespace",
	"persistentvolumes": "may delete the data on it",
	"nodes": "takes its pods with it",
	"storageclasses": "leaves the claims that name it without volumes",
	"mutatingwebhookconfigurations": "stops the admission changes it makes",
	"validatingwebhookconfigurations": "stops the admission checks it makes",
	"validatingadmissionpolicies": "stops the admission checks it makes",
	"validatingadmissionpolicybindings": "stops the admission checks it makes",
	"mutatingadmissionpolicies": "stops the admission changes it makes",
	"mutatingadmissionpolicybindings": "stops the admission changes it makes",
	"apiservices": "takes the API it serves with it",
	"clusterroles": "takes away what it grants, from the control plane too",
	"clusterrolebindings": "takes away what it grants, from the control plane too",
}

# An agent's destroy in a production namespace — one object (a Deployment, a Service, a
# claim and its data) or every object of a resource there — waits for a cluster admin.
# Deleting one Pod passes: its controller makes another (a pod restart).
k8s_holds contains {
	"rule": "k8s.production_destroy",
	"reason": destroy_words,
	"approvers": ["group:cluster-admins"],
	"seconds": 300,
} if {
	agent
	"destroy" in k8s_effects
	input.k8s.namespace_labels.environment == "production"
	not one_pod
}

one_pod if {
	input.k8s.resource == "pods"
	is_string(input.k8s.name)
}

# A destroy in words: "delete Deployment web in namespace prod", "delete every Deployment
# matching app=web in namespace prod". (An eviction names one pod: it passes, above.)
destroy_words := sprintf("delete %s %s%s", [k8s_what, input.k8s.name, k8s_where]) if {
	is_string(input.k8s.name)
} else := sprintf("delete %s%s%s", [every_what, selected, k8s_where])

# The kind a resource serves where the pack knows it ("Deployment"), else the resource.
k8s_what := sprintf("%s/%s", [k8s_kind, input.k8s.subresource]) if {
	is_string(input.k8s.subresource)
} else := k8s_kind

k8s_kind := object.get(kinds, input.k8s.resource, input.k8s.resource)

every_what := sprintf("every %s", [kinds[input.k8s.resource]]) if {
	kinds[input.k8s.resource]
} else := sprintf("all %s", [input.k8s.resource])

# The call's object's name, from the path, else the body (a create's); "" without one.
k8s_named := sprintf(" %s", [object_name]) if {
	object_name != "(unnamed)"
} else := ""

k8s_where := sprintf(" in namespace %s", [input.k8s.namespace]) if {
	is_string(input.k8s.namespace)
} else := ""

selected := sprintf(" matching %s", [concat(", ", selectors)]) if {
	selectors := [s | some s in [input.k8s.label_selector, input.k8s.field_selector]; is_string(s); s != ""]
	count(selectors) > 0
} else := ""

kinds := {
	"pods": "Pod", "deployments": "Deployment", "statefulsets": "StatefulSet",
	"daemonsets": "DaemonSet", "replicasets": "ReplicaSet",
	"replicationcontrollers": "ReplicationController", "jobs": "Job", "cronjobs": "CronJob",
	"services": "Service", "configmaps": "ConfigMap", "secrets": "Secret",
	"persistentvolumeclaims": "PersistentVolumeClaim", "persistentvolumes": "PersistentVolume",
	"ingresses": "Ingress", "serviceaccounts": "ServiceAccount", "namespaces": "Namespace",
	"nodes": "Node", "storageclasses": "StorageClass",
	"customresourcedefinitions": "CustomResourceDefinition", "apiservices": "APIService",
	"mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
	"validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
	"validatingadmissionpolicies": "ValidatingAdmissionPolicy",
	"validatingadmissionpolicybindings": "ValidatingAdmissionPolicyBinding",
	"mutatingadmissionpolicies": "MutatingAdmissionPolicy",
	"mutatingadmissionpolicybindings": "MutatingAdmissionPolicyBinding",
	"roles": "Role", "clusterroles": "ClusterRole", "rolebindings": "RoleBinding",
	"clusterrolebindings": "ClusterRoleBinding",
	"certificatesigningrequests": "CertificateSigningRequest",
}

# The call's effects (input.k8s.effects) with what its body adds (input.k8s.object.effects).
# Without the interpreter's effects (an older tollgate, a hand-built input), those its verb
# alone implies.
k8s_effects := call_effects | {e | some e in array_or_empty(input.k8s.object.effects)}

call_effects := {e | some e in input.k8s.effects} if {
	is_array(input.k8s.effects)
} else := {verb_effects[input.k8s.verb]} if {
	verb_effects[input.k8s.verb]
} else := {"unknown"}

verb_effects := {
	"get": "read", "list": "read", "watch": "read", "create": "write", "update": "write",
	"patch": "write", "delete": "destroy", "deletecollection": "destroy",
	"exec": "runs_code", "attach": "runs_code", "portforward": "connect", "proxy": "connect",
}

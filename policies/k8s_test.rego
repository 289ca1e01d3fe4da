# Unit tests of k8s.rego, on input.k8s as the Kubernetes interpreter fills it.
package tollgate_k8s_test

import rego.v1

call(groups, k8s) := {"phase": "request", "identity": {"groups": groups},
	"target": {"name": "cluster", "protocol": "k8s", "labels": {}},
	"request": {"method": "GET", "path": "/", "query": {}, "headers": {}, "body": null},
	"k8s": object.union({
		"verb": "get", "api_group": "", "api_version": "v1", "resource": "pods", "subresource": null,
		"namespace": "default", "name": null, "resource_request": true, "exec": null,
		"label_selector": null, "field_selector": null, "dry_run": false, "error": null,
		"namespace_labels": {}, "object": null,
	}, k8s)}

production := {"environment": "production"}

exec_into(labels) := {"verb": "exec", "subresource": "exec", "name": "web-1", "namespace": "prod",
	"namespace_labels": labels, "exec": {"command": ["ls"], "container": null, "stdin": false,
		"stdout": true, "stderr": true, "tty": false, "transport": "websocket"}}

test_agents_cannot_exec_into_production if {
	d := data.tollgate.decision with input as call(["agents"], exec_into(production))
	d.rules == ["k8s.production_session"]
	d.reasons == ["exec into production namespace prod"]
}

test_agents_cannot_attach_or_port_forward_in_production if {
	every verb in ["attach", "portforward"] {
		d := data.tollgate.decision with input as call(["agents"], object.union(exec_into(production), {"verb": verb}))
		d.rules == ["k8s.production_session"]
	}
}

# An exec's and an attach's output is read (the stream front, extproc/kube/) and masked;
# a port-forward's bytes are a tunnel no mask applies to.
test_agents_may_exec_elsewhere_masked if {
	every verb in ["exec", "attach"] {
		d := data.tollgate.decision with input as call(["agents"], object.union(exec_into({"environment": "staging"}), {"verb": verb}))
		d.action == "allow"
		d.mask.detectors == ["all"]
	}
}

test_a_port_forward_elsewhere_is_unmasked if {
	forward := object.union(exec_into({"environment": "staging"}), {"verb": "portforward", "subresource": "portforward", "exec": null})
	d := data.tollgate.decision with input as call(["agents"], forward)
	d.action == "allow"
	d.mask == {}
}

test_people_outside_agents_may_exec_into_production if {
	data.tollgate.decision.action == "allow" with input as call(["sre"], exec_into(production))
}

test_agents_cannot_read_secrets if {
	every verb in ["get", "list", "watch"] {
		d := data.tollgate.decision with input as call(["agents"], {"verb": verb, "resource": "secrets"})
		d.rules == ["k8s.secrets"]
	}
}

test_agents_may_read_pods_masked if {
	d := data.tollgate.decision with input as call(["agents"], {"verb": "list"})
	d.action == "allow"
	d.mask.detectors == ["all"]
}

test_nobody_deletes_a_namespace if {
	every groups in [["agents"], ["sre", "dba"]] {
		d := data.tollgate.decision with input as call(groups, {
			"verb": "delete", "resource": "namespaces", "name": "staging", "namespace": "staging",
		})
		d.rules == ["k8s.namespace_delete"]
	}
}

test_an_unreadable_request_is_denied if {
	d := data.tollgate.decision with input as call(["sre"], {"error": "empty path segment"})
	d.rules == ["k8s.unreadable"]
}

test_an_unreadable_pod_spec_is_denied_to_agents_only if {
	k8s := {"verb": "create", "resource": "deployments", "namespace": "staging", "object": {"error": "protobuf"}}
	agent := data.tollgate.decision with input as call(["agents"], k8s)
	agent.rules == ["k8s.unread_workload"]
	person := data.tollgate.decision with input as call(["sre"], k8s)
	person.action == "allow"
}

test_a_k8s_target_without_the_interpreters_reading_is_denied if {
	every k8s in [null, "exec", ["exec"]] {
		d := data.tollgate.decision with input as object.union(object.remove(call(["sre"], {}), ["k8s"]), {"k8s": k8s})
		d.rules == ["k8s.unread"]
	}
}

test_agents_cannot_reach_the_kubelet_through_nodes_proxy if {
	proxy := {"verb": "proxy", "resource": "nodes", "subresource": "proxy", "name": "n1", "namespace": null}
	d := data.tollgate.decision with input as call(["agents"], proxy)
	d.rules == ["k8s.node_proxy"]
	data.tollgate.decision.action == "allow" with input as call(["sre"], proxy)
}

test_agents_cannot_add_a_debug_container_in_production if {
	debug := {"verb": "patch", "subresource": "ephemeralcontainers", "name": "web-1", "namespace": "prod"}
	d := data.tollgate.decision with input as call(["agents"], object.union(debug, {"namespace_labels": production}))
	d.reasons == ["debug container into production namespace prod"]
	data.tollgate.decision.action == "allow" with input as call(["agents"], debug)
}

test_agents_may_only_create_secrets if {
	every verb in ["get", "list", "watch", "update", "patch", "delete", "deletecollection"] {
		d := data.tollgate.decision with input as call(["agents"], {"verb": verb, "resource": "secrets"})
		d.reasons == [sprintf("%s secrets", [verb])]
	}
	data.tollgate.decision.action == "allow" with input as call(["agents"], {"verb": "create", "resource": "secrets"})
}

test_a_session_is_a_write_on_a_read_only_cluster if {
	session := object.union(call(["sre"], exec_into({})), {"target": {"labels": {"access": "read-only"}}})
	d := data.tollgate.decision with input as session
	d.rules == ["http.read_only"]
	d.reasons == ["exec on a read-only target"]
}

# An exec whose argv the interpreter read into `commands` (extproc/interpret/shell.py).
exec_running(labels, commands) := object.union(exec_into(labels), {"exec": {"command": commands[0], "commands": commands}})

rm_rf_root := [["sh", "-c", "rm -rf /"], ["rm", "-rf", "/"]]

test_a_destructive_exec_is_refused_in_every_namespace_to_everyone if {
	every labels in [{}, {"environment": "staging"}] {
		every groups in [["agents"], ["sre"], ["dba", "privileged"]] {
			d := data.tollgate.decision with input as call(groups, exec_running(labels, rm_rf_root))
			d.rules == ["k8s.destructive_exec"]
			d.reasons == ["destructive command in exec: rm -rf /"]
		}
	}
}

test_a_destructive_exec_into_production_is_refused_for_both_reasons if {
	d := data.tollgate.decision with input as call(["agents"], exec_running(production, rm_rf_root))
	d.rules == ["k8s.destructive_exec", "k8s.production_session"]
	d.reasons == ["destructive command in exec: rm -rf /", "exec into production namespace prod"]
}

test_a_harmless_exec_is_allowed if {
	every commands in [[["ls", "/"]], [["sh", "-c", "ls / && uptime"], ["ls", "/"], ["uptime"]]] {
		data.tollgate.decision.action == "allow" with input as call(["agents"], exec_running({}, commands))
	}
}

test_without_the_readings_commands_the_argv_as_sent_is_judged if {
	every commands in [null, "rm -rf /"] {
		exec := object.union(exec_into({}), {"exec": {"command": ["rm", "-rf", "/"], "commands": commands}})
		d := data.tollgate.decision with input as call(["sre"], exec)
		d.rules == ["k8s.destructive_exec"]
	}
}

test_commands_in_no_readable_shape_are_no_command if {
	exec := object.union(exec_into({}), {"exec": {"commands": [["rm", "-rf", 7], "rm -rf /", 5]}})
	data.tollgate.decision.action == "allow" with input as call(["sre"], exec)
}

test_an_interactive_shell_is_a_session_not_a_destructive_command if {
	every commands in [[["sh"]], [["bash", "-il"]], [["sudo", "sh"], ["sh"]]] {
		data.tollgate.decision.action == "allow" with input as call(["agents"], exec_running({}, commands))
	}
}

pod(spec) := object.union({"containers": [{"name": "x", "image": "busybox", "command": ["sh"], "args": null}],
	"secrets": [], "service_account": null, "host_network": false, "host_pid": false,
	"host_ipc": false, "host_paths": [], "privileged": false, "capabilities": []}, spec)

write(verb, labels, pod_spec) := {"verb": verb, "namespace": "prod", "namespace_labels": labels,
	"object": {"kind": "Pod", "namespace": null, "name": "x", "patch": null, "pod": pod_spec}}

test_agents_cannot_write_a_workloads_pod_spec_in_production if {
	every verb in ["create", "update", "patch"] {
		d := data.tollgate.decision with input as call(["agents"], write(verb, production, pod({})))
		d.rules == ["k8s.production_workload"]
		d.reasons == [sprintf("%s of Pod x in production namespace prod", [verb])]
	}
}

test_a_write_that_leaves_the_pod_spec_alone_is_allowed_in_production if {
	d := data.tollgate.decision with input as call(["agents"], write("patch", production, null))
	d.action == "allow"
}

test_workloads_may_be_written_elsewhere_and_by_others if {
	data.tollgate.decision.action == "allow" with input as call(["agents"], write("create", {}, pod({})))
	data.tollgate.decision.action == "allow" with input as call(["sre"], write("create", production, pod({})))
}

test_an_agents_pod_that_reaches_past_its_container_waits_for_a_cluster_admin_anywhere if {
	every case in [
		[{"privileged": true}, "a privileged container"],
		[{"host_paths": ["/"]}, "host path /"],
		[{"host_network": true}, "the host's network"],
		[{"host_pid": true}, "the host's processes"],
		[{"host_ipc": true}, "the host's IPC"],
		[{"capabilities": ["SYS_ADMIN"]}, "capability SYS_ADMIN"],
		[{"service_account": "deployer"}, "service account deployer"],
	] {
		every labels in [{}, {"environment": "staging"}] {
			d := data.tollgate.decision with input as call(["agents"], write("create", labels, pod(case[0])))
			d.action == "hold"
			d.rules == ["k8s.privileged_pod"]
			d.approvers == ["group:cluster-admins"]
			d.reasons == [sprintf("create of Pod x in namespace prod: %s", [case[1]])]
		}
	}
}

test_every_way_out_of_a_pod_is_named_in_its_reason if {
	spec := {"privileged": true, "host_paths": ["/var/run", "/"], "capabilities": ["ALL"]}
	d := data.tollgate.decision with input as call(["agents"], write("patch", {}, pod(spec)))
	d.reasons == ["patch of Pod x in namespace prod: a privileged container, capability ALL, host path /, host path /var/run"]
}

test_a_pod_of_the_default_account_or_one_the_target_names_passes if {
	labelled := object.union(call(["agents"], write("create", {}, pod({"service_account": "ci"}))),
		{"target": {"labels": {"k8s-service-accounts": "builder, ci"}}})
	data.tollgate.decision.action == "allow" with input as labelled
	data.tollgate.decision.action == "allow" with input as call(["agents"], write("create", {}, pod({"service_account": "default"})))
}

test_a_target_may_allow_privileged_pods if {
	labelled := object.union(call(["agents"], write("create", {}, pod({"privileged": true}))),
		{"target": {"labels": {"k8s-privileged-pods": "allow"}}})
	data.tollgate.decision.action == "allow" with input as labelled
}

test_privileged_pods_are_for_people_and_cluster_admins if {
	data.tollgate.decision.action == "allow" with input as call(["sre"], write("create", {}, pod({"privileged": true})))
	data.tollgate.decision.action == "allow" with input as call(["agents", "cluster-admins"], write("create", {}, pod({"privileged": true})))
}

test_a_pod_mounting_a_secret_is_a_secret_read_in_every_namespace if {
	d := data.tollgate.decision with input as call(["agents"], write("create", {}, pod({"secrets": ["db"]})))
	d.rules == ["k8s.secret_mount"]
	d.reasons == ["Pod x mounts secret db"]
	data.tollgate.decision.action == "allow" with input as call(["sre"], write("create", {}, pod({"secrets": ["db"]})))
}

test_an_unnamed_write_is_named_as_such if {
	k8s := object.union(write("create", {}, pod({"secrets": ["db"]})), {"object": {"name": null}})
	d := data.tollgate.decision with input as call(["agents"], k8s)
	d.reasons == ["Pod (unnamed) mounts secret db"]
}

test_a_token_request_is_a_secret_read if {
	d := data.tollgate.decision with input as call(["agents"], {"verb": "create", "resource": "serviceaccounts", "subresource": "token", "name": "default"})
	d.rules == ["k8s.secrets"]
	d.reasons == ["create serviceaccounts/token"]
}

test_agents_may_read_pod_logs_masked_in_production if {
	d := data.tollgate.decision with input as call(["agents"], {"subresource": "log", "name": "web-1", "namespace": "prod", "namespace_labels": production})
	d.action == "allow"
	d.mask.detectors == ["all"]
}

# An exec whose commands the shell reader found opaque (extproc/interpret/shell.py).
exec_opaque(opaque) := object.union(exec_into({}), {"exec": {"command": ["sh", "-c", "..."], "commands": [["sh", "-c", "..."]], "opaque": opaque}})

test_an_agents_opaque_exec_waits_for_a_dba if {
	d := data.tollgate.decision with input as call(["agents"], exec_opaque([{"argv": ["sh"], "why": "computed_script"}]))
	d.action == "hold"
	d.rules == ["k8s.opaque_exec"]
	d.approvers == ["group:dba"]
	d.reasons == ["exec runs what cannot be read (computed_script): sh"]
}

test_a_persons_opaque_exec_passes if {
	d := data.tollgate.decision with input as call(["sre"], exec_opaque([{"argv": ["python3", "-c", "x"], "why": "inline_code"}]))
	d.action == "allow"
}

test_a_destructive_opaque_exec_or_write_is_refused_to_everyone if {
	every groups in [["agents"], ["sre"]] {
		opaque := data.tollgate.decision with input as call(groups, exec_opaque([{"argv": ["$(echo rm)", "-rf", "/"], "why": "computed_program"}]))
		opaque.rules == ["k8s.destructive_exec"]
		written := object.union(exec_into({}), {"exec": {"commands": [["cat", "/dev/zero"]], "writes": ["/dev/sda"]}})
		write := data.tollgate.decision with input as call(groups, written)
		write.rules == ["k8s.destructive_exec"]
		write.reasons == ["destructive command in exec: output written to /dev/sda"]
	}
}

# -- k8s.credential_exec -----------------------------------------------------------------

token := "/var/run/secrets/kubernetes.io/serviceaccount/token"

# kubectl cp out of a pod is `tar cf - PATH`; into one, `tar xmf - -C DIR`.
test_kubectl_cp_of_a_credential_is_refused_to_everyone if {
	every groups in [["agents"], ["sre"]] {
		every commands in [[["cat", token]], [["tar", "cf", "-", token]], [["tar", "-xmf", "-", "-C", "/root/.ssh"]], [["sh", "-c", "cat ~/.kube/config"], ["cat", "~/.kube/config"]]] {
			d := data.tollgate.decision with input as call(groups, exec_running({}, commands))
			d.rules == ["k8s.credential_exec"]
		}
	}
	d := data.tollgate.decision with input as call(["agents"], exec_running({}, [["tar", "cf", "-", token]]))
	d.reasons == [sprintf("exec: credential %s (a Kubernetes service-account token, a container secret)", [token])]
}

test_kubectl_cp_of_other_files_passes if {
	every commands in [[["tar", "cf", "-", "/app/logs"]], [["tar", "xmf", "-", "-C", "/tmp"]], [["ls", "/var/run"]]] {
		data.tollgate.decision.action == "allow" with input as call(["agents"], exec_running({}, commands))
	}
}

# -- inside a session the stream front relays: lines typed, kubectl cp's files -----------

# A line typed into `kubectl exec -it ... -- sh`, as extproc/interpret/k8s.py reads it: the
# exec's streams, with `commands` the line's.
typed(commands, readable, why) := object.union(exec_into({}), {"exec": {
	"command": ["sh"], "commands": commands, "opaque": [], "writes": [],
	"line": concat(" ", commands[0]), "readable": readable, "unreadable": why,
}})

test_a_typed_line_is_judged_as_an_execs_argv if {
	every groups in [["agents"], ["sre"]] {
		d := data.tollgate.decision with input as call(groups, typed([["rm", "-rf", "/"]], true, null))
		d.rules == ["k8s.destructive_exec"]
		d.reasons == ["destructive command in exec: rm -rf /"]
		read := data.tollgate.decision with input as call(groups, typed([["cat", token]], true, null))
		read.rules == ["k8s.credential_exec"]
	}
}

test_a_harmless_typed_line_passes_masked if {
	d := data.tollgate.decision with input as call(["agents"], typed([["ls", "-la", "/app"]], true, null))
	d.action == "allow"
	d.mask.detectors == ["all"]
}

test_an_unreadable_line_is_refused_to_everyone if {
	every groups in [["agents"], ["sre", "privileged"]] {
		d := data.tollgate.decision with input as call(groups, typed([["echo", "'x"]], false, "an open quote"))
		d.rules == ["k8s.unreadable_line"]
		d.reasons == ["a line tollgate cannot read as the pod's shell would: an open quote"]
	}
}

test_only_a_line_typed_is_unreadable if {
	# a reason beside a readable line, or `readable: false` outside a line, refuses nothing
	data.tollgate.decision.action == "allow" with input as call(["agents"], typed([["ls"]], true, "an open quote"))
	outside := object.union(exec_into({}), {"exec": {"line": null, "readable": false, "unreadable": "x"}})
	data.tollgate.decision.action == "allow" with input as call(["agents"], outside)
}

# A file of kubectl cp's archive (`tar cf -` out of the pod, `tar xmf - -C DIR` into it).
copied(direction, path, type, link) := object.union(exec_into({}), {"exec": {
	"command": ["tar", "cf", "-", "/srv"], "commands": [["tar", "cf", "-", "/srv"]],
	"file": {"path": path, "direction": direction, "type": type, "size": 10, "link": link},
}})

test_no_secret_or_credential_is_copied_out_of_a_pod if {
	every groups in [["agents"], ["sre"]] {
		every path_what in [
			["/etc/shadow", "a secret"],
			["/tmp/../etc/gshadow", "a secret"],
			["/home/app/.ssh/id_ed25519", "a secret"],
			["app/.env", "a credential (an environment file)"],
			["/srv/ops/.kube/config", "a credential (a kubeconfig)"],
			[token, "a credential (a Kubernetes service-account token, a container secret)"],
		] {
			d := data.tollgate.decision with input as call(groups, copied("download", path_what[0], "file", null))
			d.rules == ["k8s.cp_credential"]
			d.reasons == [sprintf("kubectl cp download of %s: %s", path_what)]
		}
	}
}

test_other_files_are_copied_out_masked if {
	every path in ["/app/log/app.log", "app/.env.example", "/etc/passwd", "/home/app/.ssh/known_hosts"] {
		d := data.tollgate.decision with input as call(["agents"], copied("download", path, "file", null))
		d.action == "allow"
		d.mask.detectors == ["all"]
	}
}

test_nothing_is_copied_over_a_system_path_a_secret_or_a_credential if {
	every groups in [["agents"], ["sre"]] {
		every path_what in [
			["/etc/passwd", "a system path"],
			["/usr/local/bin/kubectl", "a system path"],
			["/etc/shadow", "a secret"],
			["/srv/app/.ssh/authorized_keys", "an SSH key directory"],
			["/srv/app/.env", "a credential (an environment file)"],
		] {
			d := data.tollgate.decision with input as call(groups, copied("upload", path_what[0], "file", null))
			d.rules == ["k8s.cp_system_write"]
			d.reasons == [sprintf("kubectl cp upload of %s: %s", path_what)]
		}
	}
}

test_no_upload_leaves_the_folder_copied_to if {
	every file in [
		["/tmp/up/../x", "file", null, "a path through .."],
		["../x", "dir", null, "a path through .."],
		["/tmp/up/conf", "symlink", "/etc", "a link that leaves the folder"],
		["/tmp/up/l", "symlink", "a/../../b", "a link that leaves the folder"],
		["/tmp/up/x", "hardlink", "../../x", "a link that leaves the folder"],
	] {
		d := data.tollgate.decision with input as call(["sre"], copied("upload", file[0], file[1], file[2]))
		d.rules == ["k8s.cp_escape"]
		d.reasons == [sprintf("kubectl cp upload of %s: %s", [file[0], file[3]])]
	}
	both := data.tollgate.decision with input as call(["agents"], copied("upload", "/tmp/up/../l", "symlink", "/etc"))
	both.reasons == ["kubectl cp upload of /tmp/up/../l: a link that leaves the folder", "kubectl cp upload of /tmp/up/../l: a path through .."]
	onto := data.tollgate.decision with input as call(["agents"], copied("upload", "/tmp/up/../../etc/passwd", "file", null))
	onto.rules == ["k8s.cp_escape", "k8s.cp_system_write"]
}

test_names_and_links_that_stay_in_the_folder_pass if {
	every file in [
		["/tmp/up/report.csv", "file", null],
		["/tmp/up/current", "symlink", "releases/v2"],
		["/tmp/up/x", "hardlink", "tmp/up/y"],
		["/tmp/up/a..b", "file", null],
		["/tmp/up/..data", "dir", null],
		["/tmp/up/f", "file", "/etc"], # a link only a link's type follows
	] {
		d := data.tollgate.decision with input as call(["agents"], copied("upload", file[0], file[1], file[2]))
		d.action == "allow"
	}
}

test_a_download_writes_nothing_in_the_pod if {
	every file in [["/etc/passwd", "file", null], ["/tmp/up/../x", "file", null], ["/srv/l", "symlink", "/etc"]] {
		data.tollgate.decision.action == "allow" with input as call(["agents"], copied("download", file[0], file[1], file[2]))
	}
}

# -- effects and scope: destroys, privilege, impersonation ---------------------------------

destroy(k8s) := object.union({"effects": ["destroy"], "namespace": "prod", "namespace_labels": production}, k8s)

test_an_agents_destroy_in_production_waits_for_a_cluster_admin if {
	every case in [
		[{"verb": "delete", "resource": "deployments", "name": "web", "scope": "object"}, "delete Deployment web in namespace prod"],
		[{"verb": "deletecollection", "resource": "deployments", "scope": "collection"}, "delete every Deployment in namespace prod"],
		[{"verb": "deletecollection", "resource": "pods", "scope": "collection", "label_selector": "app=web"}, "delete every Pod matching app=web in namespace prod"],
		[{"verb": "deletecollection", "resource": "widgets", "scope": "collection", "field_selector": "metadata.name=w"}, "delete all widgets matching metadata.name=w in namespace prod"],
		[{"verb": "delete", "resource": "persistentvolumeclaims", "name": "data", "scope": "object"}, "delete PersistentVolumeClaim data in namespace prod"],
	] {
		d := data.tollgate.decision with input as call(["agents"], destroy(case[0]))
		d.action == "hold"
		d.rules == ["k8s.production_destroy"]
		d.reasons == [case[1]]
		d.approvers == ["group:cluster-admins"]
		d.hold_seconds == 300
	}
}

test_one_pod_deleted_or_evicted_in_production_passes if {
	every k8s in [
		{"verb": "delete", "resource": "pods", "name": "web-1", "scope": "object"},
		{"verb": "create", "resource": "pods", "subresource": "eviction", "name": "web-1", "scope": "object"},
	] {
		data.tollgate.decision.action == "allow" with input as call(["agents"], destroy(k8s))
	}
}

test_a_destroy_outside_production_or_by_a_person_passes if {
	k8s := {"verb": "deletecollection", "resource": "deployments", "scope": "collection"}
	data.tollgate.decision.action == "allow" with input as call(["agents"], destroy(object.union(k8s, {"namespace": "staging", "namespace_labels": {"environment": "staging"}})))
	data.tollgate.decision.action == "allow" with input as call(["sre"], destroy(k8s))
}

test_a_dry_run_destroy_is_still_held if {
	# A DELETE's options come from its body when it has one: the query's dryRun is then ignored.
	k8s := {"verb": "delete", "resource": "deployments", "name": "web", "scope": "object", "dry_run": true}
	data.tollgate.decision.rules == ["k8s.production_destroy"] with input as call(["agents"], destroy(k8s))
}

cluster_destroy(k8s) := object.union({"effects": ["destroy"], "namespace": null, "scope": "cluster"}, k8s)

test_agents_cannot_destroy_what_takes_much_with_it if {
	every case in [
		[{"verb": "delete", "resource": "customresourcedefinitions", "name": "widgets.example.com"}, "delete CustomResourceDefinition widgets.example.com: it deletes every object of its kind, in every namespace"],
		[{"verb": "deletecollection", "resource": "nodes"}, "delete every Node: each takes its pods with it"],
		[{"verb": "delete", "resource": "persistentvolumes", "name": "pv-1"}, "delete PersistentVolume pv-1: it may delete the data on it"],
		[{"verb": "delete", "resource": "validatingwebhookconfigurations", "name": "policy"}, "delete ValidatingWebhookConfiguration policy: it stops the admission checks it makes"],
		[{"verb": "deletecollection", "resource": "priorityclasses"}, "delete all priorityclasses across the cluster"],
	] {
		d := data.tollgate.decision with input as call(["agents"], cluster_destroy(case[0]))
		d.rules == ["k8s.cluster_destroy"]
		d.reasons == [case[1]]
	}
	data.tollgate.decision.action == "allow" with input as call(["sre"], cluster_destroy({"verb": "delete", "resource": "nodes", "name": "n1"}))
}

test_a_namespace_destroy_is_namespace_deletions_alone if {
	every k8s in [
		{"verb": "delete", "resource": "namespaces", "name": "prod", "scope": "namespace"},
		{"verb": "deletecollection", "resource": "namespaces", "scope": "cluster"},
	] {
		data.tollgate.decision.rules == ["k8s.namespace_delete"] with input as call(["agents"], destroy(k8s))
	}
}

binding(grants) := {"verb": "create", "resource": "clusterrolebindings", "namespace": null, "effects": ["privilege", "write"], "scope": "object",
	"object": {"kind": "ClusterRoleBinding", "namespace": null, "name": "ci-admin", "patch": null, "pod": null, "effects": ["privilege"], "grants": grants}}

test_an_escalating_grant_is_for_cluster_admins_only if {
	k8s := binding(["binds ClusterRole cluster-admin to ServiceAccount prod/ci"])
	every groups in [["agents"], ["sre"], ["dba"]] {
		d := data.tollgate.decision with input as call(groups, k8s)
		d.rules == ["k8s.privilege"]
		d.reasons == ["create of ClusterRoleBinding ci-admin: binds ClusterRole cluster-admin to ServiceAccount prod/ci"]
	}
	data.tollgate.decision.action == "allow" with input as call(["cluster-admins"], k8s)
	data.tollgate.decision.action == "allow" with input as call(["agents", "cluster-admins"], k8s)
}

test_each_escalating_grant_is_a_reason if {
	d := data.tollgate.decision with input as call(["sre"], binding(["grants * on *", "adds its rules to ClusterRole edit (to everyone bound to it)"]))
	d.reasons == [
		"create of ClusterRoleBinding ci-admin: adds its rules to ClusterRole edit (to everyone bound to it)",
		"create of ClusterRoleBinding ci-admin: grants * on *",
	]
}

test_an_rbac_write_whose_grants_cannot_be_read_is_refused if {
	every case in [
		[{"error": "a create of clusterrolebindings sent as application/vnd.kubernetes.protobuf is not read (send JSON or YAML)"}, "a create of clusterrolebindings sent as application/vnd.kubernetes.protobuf is not read (send JSON or YAML)"],
		[null, "the body was not read"],
	] {
		d := data.tollgate.decision with input as call(["sre"], object.union(object.remove(binding([]), ["object"]), {"object": case[0]}))
		d.rules == ["k8s.privilege"]
		d.reasons == [sprintf("create of clusterrolebindings: what it grants cannot be read: %s", [case[1]])]
	}
}

test_an_agents_other_privilege_change_waits_for_a_cluster_admin if {
	every case in [
		[binding([]), "create of ClusterRoleBinding ci-admin: changes who may do what"],
		[{"verb": "patch", "resource": "mutatingwebhookconfigurations", "name": "inject", "namespace": null, "effects": ["privilege", "write"]}, "patch of MutatingWebhookConfiguration inject: changes what the API server admits"],
		[{"verb": "update", "resource": "certificatesigningrequests", "subresource": "approval", "name": "csr-1", "namespace": null, "effects": ["privilege", "write"]}, "update of CertificateSigningRequest/approval csr-1: approves a certificate, a credential for the user it names"],
		[{"verb": "create", "resource": "widgetgrants", "namespace": null, "effects": ["privilege", "write"]}, "create of widgetgrants: changes privileges"],
	] {
		d := data.tollgate.decision with input as call(["agents"], case[0])
		d.action == "hold"
		d.rules == ["k8s.privilege_change"]
		d.reasons == [case[1]]
		d.approvers == ["group:cluster-admins"]
	}
	data.tollgate.decision.action == "allow" with input as call(["sre"], binding([]))
	data.tollgate.decision.action == "allow" with input as call(["agents", "cluster-admins"], binding([]))
}

test_a_dry_run_grant_grants_nothing if {
	every groups in [["agents"], ["sre"]] {
		k8s := object.union(binding(["binds ClusterRole cluster-admin to User eve"]), {"dry_run": true})
		data.tollgate.decision.action == "allow" with input as call(groups, k8s)
	}
}

test_without_the_interpreters_effects_the_verb_says_what_a_call_does if {
	d := data.tollgate.decision with input as call(["agents"], object.remove(destroy({"verb": "delete", "resource": "deployments", "name": "web"}), ["effects"]))
	d.rules == ["k8s.production_destroy"]
	every k8s in [{"verb": "frob"}, {"verb": ["delete"]}] {
		data.tollgate.decision.action == "allow" with input as call(["agents"], object.remove(destroy(k8s), ["effects"]))
	}
}

test_a_patch_that_rewrites_a_pod_spec_runs_code_by_its_body if {
	# call effects say write; the body adds runs_code (input.k8s.object.effects)
	k8s := object.union(write("patch", {}, pod({})), {"effects": ["write"], "object": {"effects": ["runs_code"]}})
	"runs_code" in data.tollgate.k8s_effects with input as call(["agents"], k8s)
	not "runs_code" in data.tollgate.k8s_effects with input as call(["agents"], object.union(k8s, {"object": {"effects": []}}))
}

with_headers(groups, headers) := object.union(call(groups, {"verb": "list"}), {"request": {"headers": headers}})

test_impersonation_headers_are_refused_to_everyone if {
	every headers in [
		{"impersonate-user": "system:admin"},
		{"Impersonate-Group": "system:masters"},
		{"IMPERSONATE-UID": "0"},
		{"impersonate-extra-scopes": "view"},
		{"Impersonate-Extra-": "x"},
	] {
		every groups in [["agents"], ["sre"], ["cluster-admins"]] {
			d := data.tollgate.decision with input as with_headers(groups, headers)
			d.rules == ["k8s.impersonation"]
		}
	}
	d := data.tollgate.decision with input as with_headers(["agents"], {"impersonate-user": "a", "impersonate-group": "g", "accept": "*/*"})
	d.reasons == ["impersonation headers impersonate-group, impersonate-user: the API server would act as someone else with the gateway's credential"]
}

test_look_alike_headers_pass if {
	every headers in [
		{"x-impersonate-user": "admin"},
		{"impersonate": "admin"},
		{"impersonate-users": "admin"},
		{"impersonate_user": "admin"},
		{"impersonated-by": "ci"},
	] {
		data.tollgate.decision.action == "allow" with input as with_headers(["agents"], headers)
	}
	# on a target of another protocol, the header is the upstream's own business
	http := object.union(with_headers(["agents"], {"impersonate-user": "a"}), {"target": {"protocol": "http"}})
	not "k8s.impersonation" in data.tollgate.decision.rules with input as http
	data.tollgate.decision.action == "allow" with input as object.union(with_headers(["agents"], {}), {"request": {"headers": ["impersonate-user"]}})
}

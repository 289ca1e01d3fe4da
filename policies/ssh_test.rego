# Unit tests of ssh.rego, on input.ssh as the SSH front fills it.
package tollgate_ssh_test

import rego.v1

on_ssh(groups, ssh) := {
	"phase": "request", "identity": {"groups": groups},
	"target": {"name": "web-1", "protocol": "ssh", "environment": "prod", "labels": {}},
	"request": {"method": upper(ssh.request), "path": "/web-1", "query": {}, "headers": {}, "body": null},
	"response": null, "sql": null, "k8s": null, "llm": null, "mcp": null, "postgres": null,
	"approval": null,
	"ssh": object.union({
		"target": "web-1", "host": "10.0.0.5", "port": 22, "user": "deploy",
		"session_id": "s-1", "pty": false, "command": null, "argv": null, "commands": [],
		"opaque": [], "writes": [], "readable": null, "sftp": null, "forward": null,
		"subsystem": null,
	}, ssh),
}

# An exec of `commands` (the shell reader's argvs; the first is the argv).
exec(commands) := {"request": "exec", "command": concat(" ", commands[0]), "argv": commands[0], "commands": commands}

line(commands) := object.union(exec(commands), {"request": "line", "pty": true, "readable": true})

decide(groups, ssh) := d if {
	d := data.tollgate.decision with input as on_ssh(groups, ssh)
}

everyone := [["agents"], ["ops"], ["privileged"]]

test_a_harmless_command_is_allowed_masked if {
	every ssh in [exec([["uptime"]]), line([["ls", "-la", "/etc"]]), {"request": "shell", "pty": true}] {
		d := decide(["agents"], ssh)
		d.action == "allow"
		d.mask.detectors == ["all"]
	}
}

test_a_destructive_command_is_refused_to_everyone if {
	every groups in everyone {
		every ssh in [exec([["sh", "-c", "rm -rf /"], ["rm", "-rf", "/"]]), line([["rm", "-rf", "/"]])] {
			d := decide(groups, ssh)
			d.rules == ["ssh.destructive_command"]
			d.reasons == ["destructive command: rm -rf /"]
		}
	}
}

test_a_destructive_opaque_command_or_write_is_refused if {
	opaque := object.union(exec([["sh", "-c", "$(echo rm) -rf /"]]), {"opaque": [{"argv": ["$(echo rm)", "-rf", "/"], "why": "computed_program"}]})
	d := decide(["agents"], opaque)
	d.rules == ["ssh.destructive_command"]
	d.reasons == ["destructive command: $(echo rm) -rf / (computed_program)"]
	written := object.union(line([["cat", "/dev/zero"]]), {"writes": ["/dev/sda"]})
	w := decide(["ops"], written)
	w.reasons == ["output written to /dev/sda"]
}

test_without_the_readers_commands_the_argv_is_judged if {
	d := decide(["agents"], {"request": "exec", "command": "rm -rf /", "argv": ["rm", "-rf", "/"], "commands": null})
	d.rules == ["ssh.destructive_command"]
}

test_acting_as_another_user_waits_for_ops if {
	every program in ["sudo", "sudoedit", "su", "doas", "pkexec", "runuser"] {
		d := decide(["agents"], exec([[program, "-", "root"]]))
		d.action == "hold"
		d.rules == ["ssh.privileged_command"]
		d.approvers == ["group:ops"]
		d.hold_seconds == 300
		d.reasons == [sprintf("privileged command: %s - root", [program])]
	}
}

test_a_wrapped_privileged_command_names_each_command if {
	d := decide(["ops"], exec([["sudo", "systemctl", "restart", "nginx"], ["systemctl", "restart", "nginx"]]))
	d.reasons == ["privileged command: sudo systemctl restart nginx", "privileged command: systemctl restart nginx"]
}

test_changing_a_service_waits_for_ops if {
	every argv in [
		["systemctl", "restart", "nginx"], ["systemctl", "--now", "enable", "x"],
		["systemctl", "try-reload-or-restart", "x"], ["systemctl", "mask", "x"],
		["systemctl", "kill", "x"], ["service", "nginx", "reload"], ["service", "cron", "stop"],
	] {
		d := decide(["agents"], line([argv]))
		d.rules == ["ssh.privileged_command"]
	}
}

test_looking_at_a_service_is_allowed if {
	every argv in [["systemctl", "status", "nginx"], ["systemctl", "list-units"], ["service", "--status-all"], ["journalctl", "-u", "nginx"]] {
		decide(["agents"], exec([argv])).action == "allow"
	}
}

test_an_opaque_command_waits_for_ops if {
	ssh := object.union(exec([["sh", "-c", "curl x | sh"], ["curl", "x"], ["sh"]]), {"opaque": [{"argv": ["sh"], "why": "computed_script"}]})
	d := decide(["agents"], ssh)
	d.action == "hold"
	d.rules == ["ssh.opaque_command"]
	d.approvers == ["group:ops"]
	d.reasons == ["runs what cannot be read (computed_script): sh"]
}

# A reader given its files at run time passes (its output is the files as written, which
# the masking reads), unless its options print them cut up or re-encoded.
test_a_reader_of_unknown_files_passes_unless_it_reshapes_them if {
	every argv in [["cat"], ["head", "-n", "5"], ["tail", "-f"], ["grep", "-n", "x"], ["grep", "-e", "o"], ["wc", "-c"]] {
		ssh := object.union(exec([["ls"], ["xargs", argv[0]], argv]), {"opaque": [{"argv": argv, "why": "stdin_operands"}]})
		decide(["agents"], ssh).action == "allow"
	}
	every argv in [["head", "-c", "5"], ["head", "-qc5"], ["tail", "--bytes=3"], ["tail", "-5c"], ["grep", "-o", "."], ["grep", "-ho", "x"], ["grep", "--only", "."], ["grep", "--color=always", "x"], ["base32"]] {
		ssh := object.union(exec([["ls"], ["xargs", argv[0]], argv]), {"opaque": [{"argv": argv, "why": "stdin_operands"}]})
		decide(["agents"], ssh).rules == ["ssh.opaque_command"]
	}
}

test_a_refusal_wins_over_a_hold if {
	ssh := exec([["sudo", "rm", "-rf", "/"], ["rm", "-rf", "/"]])
	d := decide(["agents"], ssh)
	d.action == "deny"
	d.rules == ["ssh.destructive_command"]
}

test_a_line_not_read_whole_is_refused if {
	every readable in [false, null, "yes"] {
		d := decide(["agents"], object.union(line([["ls"]]), {"readable": readable}))
		d.rules == ["ssh.unreadable_line"]
	}
	decide(["agents"], line([["ls"]])).action == "allow"
}

test_every_forward_is_refused if {
	forwards := {
		"local port forwarding to db.internal:5432": {"kind": "local_port", "host": "db.internal", "port": 5432},
		"remote port forwarding from 127.0.0.1:8080": {"kind": "remote_port", "host": "127.0.0.1", "port": 8080},
		"local socket forwarding to /run/docker.sock": {"kind": "local_socket", "host": "/run/docker.sock", "port": 0},
		"remote socket forwarding from /tmp/s": {"kind": "remote_socket", "host": "/tmp/s", "port": 0},
		"agent forwarding": {"kind": "agent", "host": null, "port": 0},
		"X11 forwarding": {"kind": "x11", "host": null, "port": 0},
		"forwarding (tun)": {"kind": "tun"},
		"forwarding (null)": null,
	}
	every reason, forward in forwards {
		every groups in everyone {
			d := decide(groups, {"request": "forward", "forward": forward})
			d.rules == ["ssh.forward"]
			d.reasons == [reason]
		}
	}
}

test_subsystems_other_than_sftp_are_refused if {
	decide(["agents"], {"request": "subsystem", "subsystem": "sftp"}).action == "allow"
	netconf := decide(["agents"], {"request": "subsystem", "subsystem": "netconf"})
	netconf.rules == ["ssh.subsystem"]
	netconf.reasons == ["subsystem netconf"]
	unnamed := decide(["agents"], {"request": "subsystem"})
	unnamed.reasons == ["subsystem null"]
}

test_scp_and_sftp_server_through_exec_are_refused if {
	every argv in [["scp", "-t", "/tmp"], ["scp", "-f", "/etc/passwd"], ["scp", "-pt", "/tmp"], ["scp", "-r", "-d", "-t", "/srv"], ["sftp-server"], ["rsync", "--server", "-logDtpre.iLsfxCIvu", "x", "/etc/"]] {
		d := decide(["agents"], exec([argv]))
		d.rules == ["ssh.transfer_command"]
		d.reasons == [sprintf("file transfer through exec (%s): transfers go through SFTP (sftp, scp), decided path by path", [concat(" ", argv)])]
	}
}

test_scp_as_a_client_and_in_a_shells_line_is_no_transfer_through_exec if {
	decide(["agents"], exec([["scp", "-oStrictHostKeyChecking=no", "-P", "2222", "f", "h:/tmp"]])).action == "allow"
	decide(["agents"], line([["scp", "-t", "/tmp"]])).action == "allow"
}

# An SFTP operation on `path` (and `target_path`).
sftp(operation, direction, path, target_path) := {"request": "sftp", "sftp": {
	"operation": operation, "direction": direction, "path": path, "target_path": target_path,
}}

test_writes_under_system_paths_are_refused if {
	refused := {
		"SFTP upload of /etc/cron.d/x: a system path": sftp("open", "upload", "/etc/cron.d/x", null),
		"SFTP remove of /usr/bin/ls: a system path": sftp("remove", "none", "/usr/bin/ls", null),
		"SFTP setstat of /var/lib/dpkg/status: a system path": sftp("setstat", "none", "/var/lib/dpkg/status", null),
		"SFTP rmdir of /home: a system path": sftp("rmdir", "none", "/home", null),
		"SFTP mkdir of /root/x: a system path": sftp("mkdir", "none", "/root/x", null),
		"SFTP rename of /etc/passwd: a system path": sftp("rename", "none", "/tmp/p", "/etc/passwd"),
		"SFTP symlink of /bin/sh: a system path": sftp("symlink", "none", "/tmp/l", "/bin/sh"),
		"SFTP link of /etc/shadow: a secret": sftp("link", "none", "/tmp/l", "/etc/shadow"),
		"SFTP upload of /home/deploy/.ssh/id_ed25519.pub: an SSH key directory": sftp("open", "both", "/home/deploy/.ssh/id_ed25519.pub", null),
	}
	every reason, ssh in refused {
		every groups in everyone {
			d := decide(groups, ssh)
			d.rules == ["ssh.sftp_system_write"]
			d.reasons == [reason]
		}
	}
}

test_writes_elsewhere_are_allowed if {
	every ssh in [
		sftp("open", "upload", "/tmp/x", null), sftp("mkdir", "none", "/srv/app", null),
		sftp("rename", "none", "/home/deploy/a", "/home/deploy/b"), sftp("remove", "none", "/var/www/old.html", null),
		sftp("symlink", "none", "/srv/app/current", "/srv/app/releases/7"),
	] {
		# In production a removal also waits (ssh.data_destroyed).
		in_env("staging", ssh).action == "allow"
	}
}

# An SFTP operation of a session whose root (starting directory) is `root`.
sftp_in(root, operation, path, target_path) := {"request": "sftp", "sftp": {
	"operation": operation, "direction": "none", "path": path, "target_path": target_path,
	"root": root,
}}

test_removals_and_renames_of_what_the_session_stands_on_are_destructive if {
	root := "/data/agents/bob"
	refused := {
		"SFTP rename of /data/agents/bob: the session's root": sftp_in(root, "rename", "/data/agents/bob", "/tmp/bob"),
		"SFTP rename of /data/agents/bob/: the session's root": sftp_in(root, "rename", "/tmp/x", "/data/agents/bob/"),
		"SFTP rmdir of /data/agents: a folder above the session's root": sftp_in(root, "rmdir", "/data/agents", null),
		"SFTP rmdir of /data/agents/bob/x/../..: a folder above the session's root": sftp_in(root, "rmdir", "/data/agents/bob/x/../..", null),
		"SFTP rename of /data: a top-level directory": sftp_in(root, "rename", "/data", "/data.old/x"),
		"SFTP remove of /tmp: a top-level directory": sftp_in(root, "remove", "/tmp", null),
		"SFTP rmdir of /home/alice: a home": sftp_in(root, "rmdir", "/home/alice", null),
		"SFTP remove of /var/www: a system directory's folder": sftp_in(root, "remove", "/var/www", null),
		"SFTP rename of /opt/app: a system directory's folder": sftp_in(root, "rename", "/opt/app", "/data/agents/bob/app"),
	}
	every reason, ssh in refused {
		every groups in everyone {
			d := decide(groups, ssh)
			d.rules == ["ssh.sftp_destructive"]
			d.reasons == [reason]
		}
	}
}

test_a_rename_is_judged_on_both_ends if {
	d := decide(["agents"], sftp_in("/home/bob", "rename", "/home/alice", "/home/bob"))
	d.reasons == ["SFTP rename of /home/alice: a home", "SFTP rename of /home/bob: a home"]
}

test_system_paths_and_credentials_stay_system_writes if {
	every ssh in [
		sftp_in("/home/bob", "rmdir", "/home", null), sftp_in("/home/bob", "remove", "/etc/passwd", null),
		sftp_in("/home/bob", "rename", "/home/bob/.aws/credentials", "/home/bob/c"),
		sftp_in("/home/bob", "rename", "/home/bob/k", "/home/bob/.ssh/authorized_keys"),
	] {
		decide(["agents"], ssh).rules == ["ssh.sftp_system_write"]
	}
}

test_ordinary_removals_and_renames_are_allowed if {
	root := "/data/agents/bob"
	every ssh in [
		sftp_in(root, "rename", "/data/agents/bob/a.txt", "/data/agents/bob/b.txt"),
		sftp_in(root, "remove", "/data/agents/bob/a.txt", null),
		sftp_in(root, "rmdir", "/data/agents/bob/build", null),
		sftp_in(root, "rename", "/data/agents/alice2", "/data/agents/alice3"),
		sftp_in(root, "remove", "/var/www/old.html", null),
		sftp_in(root, "symlink", "/data/agents/bob/current", "/data/agents/bob/releases/7"),
		sftp_in(root, "mkdir", "/data/agents/bob/new", null),
		# Without a root (an input built by hand) only the root's own rules are left out.
		sftp("rename", "none", "/data/agents/bob", "/data/agents/bob2"),
	] {
		# In production a removal also waits (ssh.data_destroyed).
		in_env("staging", ssh).action == "allow"
	}
}

test_reads_of_secrets_are_refused if {
	every path in [
		"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/root/.ssh/id_rsa",
		"/home/deploy/.ssh/id_ed25519", "/etc/ssh/ssh_host_ed25519_key",
	] {
		every groups in everyone {
			d := decide(groups, sftp("open", "download", path, null))
			d.rules == ["ssh.sftp_secret_read"]
			d.reasons == [sprintf("SFTP download of %s: a secret", [path])]
		}
	}
}

test_other_reads_are_allowed if {
	every path in ["/etc/passwd", "/etc/ssh/ssh_host_ed25519_key.pub", "/home/deploy/.ssh/id_ed25519.pub", "/var/log/syslog"] {
		decide(["agents"], sftp("open", "download", path, null)).action == "allow"
	}
	decide(["agents"], sftp("list", "none", "/root/.ssh", null)).action == "allow"
}

test_a_read_and_write_open_is_judged_both_ways if {
	d := decide(["agents"], sftp("open", "both", "/etc/shadow", null))
	d.rules == ["ssh.sftp_secret_read", "ssh.sftp_system_write"]
}

test_an_open_of_unknown_direction_is_judged_both_ways if {
	d := decide(["agents"], sftp("open", null, "/etc/gshadow", null))
	d.rules == ["ssh.sftp_secret_read", "ssh.sftp_system_write"]
}

test_paths_are_judged_resolved if {
	d := decide(["agents"], sftp("open", "download", "/tmp/../etc/./shadow", null))
	d.reasons == ["SFTP download of /tmp/../etc/./shadow: a secret"]
	up := decide(["agents"], sftp("open", "upload", "/../../etc//cron.d/x", null))
	up.rules == ["ssh.sftp_system_write"]
	decide(["agents"], sftp("open", "upload", "/etc/../tmp/x", null)).action == "allow"
}

test_a_path_resolves_as_the_host_resolves_it if {
	cases := {
		"/": "/", "//": "/", "/..": "/", "/a/b/../c": "/a/c", "/a/../../b": "/b",
		"/a/./b/": "/a/b", "/a/b/../../..": "/", "/a/..b/c": "/a/..b/c", "/tmp/../etc/shadow": "/etc/shadow",
	}
	every path, resolved in cases {
		data.tollgate.resolved_path(path) == resolved
	}
}

test_a_request_not_read_is_refused if {
	every ssh in [null, "exec", ["exec"]] {
		d := data.tollgate.decision with input as object.union(on_ssh(["ops"], {"request": "exec"}), {"ssh": ssh})
		d.rules == ["ssh.unread"]
		d.reasons == ["the SSH request was not read (input.ssh missing)"]
	}
}

test_an_unknown_request_or_operation_is_refused if {
	unknown := decide(["ops"], {"request": "env"})
	unknown.reasons == ["unknown SSH request: env"]
	operation := decide(["ops"], sftp("truncate", "none", "/tmp/x", null))
	operation.reasons == ["unknown SFTP operation: truncate"]
	shapeless := decide(["ops"], {"request": "sftp", "sftp": "open /etc/shadow"})
	shapeless.reasons == ["unknown SFTP operation: null"]
}

test_an_sftp_path_must_be_absolute_and_judgeable if {
	relative := decide(["ops"], sftp("open", "download", "../../etc/shadow", null))
	relative.rules == ["ssh.unread"]
	relative.reasons == ["SFTP open path is not absolute: ../../etc/shadow"]
	missing := decide(["ops"], sftp("rename", "none", "/tmp/a", null))
	missing.reasons == ["SFTP rename path is not absolute: null"]
	long := concat("", array.concat(["/etc"], [s | some _ in numbers.range(1, 300); s := "/a/.."]))
	deep := decide(["ops"], sftp("open", "upload", long, null))
	deep.reasons == ["SFTP open path has more than 256 segments"]
}

test_the_ssh_rules_leave_other_protocols_alone if {
	d := data.tollgate.decision with input as object.union(on_ssh(["agents"], {"request": "exec"}), {
		"target": {"name": "api", "protocol": "http", "environment": "prod", "labels": {}},
		"request": {"method": "GET", "path": "/", "query": {}, "headers": {}, "body": null},
		"ssh": null,
	})
	d.action == "allow"
}

# -- ssh.credential ----------------------------------------------------------------------

test_a_command_naming_a_credential_is_refused_to_everyone if {
	every groups in everyone {
		every ssh in [exec([["cat", ".aws/credentials"]]), line([["base64", "/home/deploy/.ssh/id_ed25519"]]), object.union(exec([["cat"]]), {"command": "cat < .env"})] {
			d := decide(groups, ssh)
			d.rules == ["ssh.credential"]
		}
	}
}

# An SSH command runs in the account's home: `.` there is the home.
test_archiving_the_home_is_refused if {
	d := decide(["agents"], exec([["tar", "czf", "-", "."]]))
	d.rules == ["ssh.credential"]
	d.reasons == ["tar reads . whole, a folder holding credentials"]
	r := decide(["agents"], exec([["rsync", "--server", "--sender", "-logDtpre.iLsfxCIvu", ".", "."]]))
	r.rules == ["ssh.credential", "ssh.transfer_command"]
}

test_sftp_reads_and_writes_of_credentials_are_refused if {
	d := decide(["agents"], sftp("open", "download", "/home/deploy/x/../.aws/credentials", null))
	d.rules == ["ssh.credential"]
	d.reasons == ["SFTP download of /home/deploy/x/../.aws/credentials: a credential (AWS credentials)"]
	u := decide(["agents"], sftp("open", "upload", "/home/deploy/.kube/config", null))
	u.reasons == ["SFTP upload of /home/deploy/.kube/config: a credential (a kubeconfig)"]
	b := decide(["agents"], sftp("open", "both", "/home/deploy/.ssh/authorized_keys", null))
	b.rules == ["ssh.credential", "ssh.sftp_system_write"]
	# A private key stays a secret_path (ssh.sftp_secret_read), named once.
	k := decide(["agents"], sftp("open", "download", "/home/deploy/.ssh/id_rsa", null))
	k.rules == ["ssh.sftp_secret_read"]
}

test_sftp_of_look_alikes_passes if {
	every ssh in [sftp("open", "download", "/home/deploy/.ssh/id_rsa.pub", null), sftp("open", "download", "/srv/app/.env.example", null), sftp("list", "none", "/home/deploy/.aws", null)] {
		decide(["agents"], ssh).action == "allow"
	}
}

# -- data destroyed on a production host ---------------------------------------------------

in_env(environment, ssh) := d if {
	given := object.union(on_ssh(["agents"], ssh), {"target": {"environment": environment}})
	d := data.tollgate.decision with input as given
}

test_destroying_data_on_a_production_host_waits_for_ops if {
	destroyed := {
		"customers.csv removed (rm)": exec([["rm", "-f", "customers.csv"]]),
		"data/x removed (unlink)": line([["unlink", "data/x"]]),
		"customers.csv written over": object.union(exec([["install", "-m", "644", "/dev/null", "customers.csv"]]), {"overwrites": ["customers.csv"]}),
		"report.txt written over": object.union(line([["true"]]), {"overwrites": ["report.txt"]}),
		"/srv/app/settings.conf removed (SFTP)": sftp("remove", "none", "/srv/app/settings.conf", null),
		"/srv/app/settings.conf truncated (SFTP open)": {"request": "sftp", "sftp": {"operation": "open", "direction": "upload", "path": "/srv/app/settings.conf", "target_path": null, "truncates": true}},
		"/srv/app/c.csv truncated (SFTP setstat)": {"request": "sftp", "sftp": {"operation": "setstat", "direction": "none", "path": "/srv/app/c.csv", "target_path": null, "truncates": true}},
	}
	every what, ssh in destroyed {
		d := in_env("prod", ssh)
		d.action == "hold"
		d.rules == ["ssh.data_destroyed"]
		d.reasons == [sprintf("destroys data on a production host: %s", [what])]
		d.approvers == ["group:ops"]
	}
}

test_destroying_data_elsewhere_or_scratch_is_no_hold if {
	every ssh in [exec([["rm", "-f", "customers.csv"]]), object.union(line([["true"]]), {"overwrites": ["report.txt"]})] {
		in_env("staging", ssh).action == "allow"
	}
	scratch := [
		exec([["rm", "-rf", "/tmp/build"]]),
		exec([["rm", "-f", "-r", "/home/deploy/.ansible/tmp/ansible-tmp-1/"]]),
		object.union(exec([["ls"]]), {"overwrites": ["/dev/null"], "writes": ["/dev/null"]}),
		object.union(exec([["sort", "-o", "/var/tmp/x"]]), {"overwrites": ["/var/tmp/x"]}),
		object.union(exec([["echo", "x"]]), {"writes": ["notes.log"], "overwrites": []}),
		{"request": "sftp", "sftp": {"operation": "open", "direction": "upload", "path": "/srv/app/new.txt", "target_path": null, "truncates": false}},
	]
	every ssh in scratch {
		in_env("prod", ssh).action == "allow"
	}
}

test_an_sftp_operation_on_a_temporary_file_is_no_scratch if {
	ssh := {"request": "sftp", "sftp": {"operation": "remove", "direction": "none", "path": "/tmp/work/customers.csv", "target_path": null}}
	in_env("prod", ssh).rules == ["ssh.data_destroyed"]
	ansible := {"request": "sftp", "sftp": {"operation": "open", "direction": "upload", "path": "/home/deploy/.ansible/tmp/ansible-tmp-1/AnsiballZ_ping.py", "target_path": null, "truncates": true}}
	in_env("prod", ansible).action == "allow"
}

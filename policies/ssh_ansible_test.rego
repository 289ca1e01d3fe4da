# Unit tests of ssh.rego's Ansible rules, on input.ssh.ansible as the SSH front fills it
# from the files a session uploaded (extproc/ssh/uploads.py).
package tollgate_ssh_ansible_test

import rego.v1

import data.tollgate_ssh_test.decide

# An exec running the AnsiballZ payload of `module` with `args`, acting on `paths`.
module(name, args, paths) := {
	"request": "exec",
	"command": "/bin/sh -c '/usr/bin/python3 /home/deploy/.ansible/tmp/t/AnsiballZ.py && sleep 0'",
	"argv": ["sh", "-c", "/usr/bin/python3 /home/deploy/.ansible/tmp/t/AnsiballZ.py && sleep 0"],
	"commands": [
		["sh", "-c", "/usr/bin/python3 /home/deploy/.ansible/tmp/t/AnsiballZ.py && sleep 0"],
		["python3", "/home/deploy/.ansible/tmp/t/AnsiballZ.py"], ["sleep", "0"],
	],
	"ansible": [{"module": name, "args": args, "path": "/home/deploy/.ansible/tmp/t/AnsiballZ.py", "check_mode": false, "paths": paths}],
	"uploads": [{"path": "/home/deploy/.ansible/tmp/t/AnsiballZ.py", "kind": "ansible", "sha256": "00"}],
}

write(path) := [{"path": path, "access": "write"}]

test_ordinary_modules_run if {
	every m in [
		module("ansible.builtin.ping", {"data": "pong"}, []),
		module("ansible.builtin.copy", {"dest": "/home/deploy/app.conf"}, write("/home/deploy/app.conf")),
		module("ansible.builtin.file", {"path": "/home/deploy/old", "state": "absent"}, [{"path": "/home/deploy/old", "access": "remove"}]),
		module("ansible.builtin.stat", {"path": "/etc/passwd"}, []),
		module("ansible.builtin.slurp", {"src": "/etc/hostname"}, [{"path": "/etc/hostname", "access": "read"}]),
	] {
		decide(["agents"], m).action == "allow"
	}
}

test_accounts_and_reboots_are_refused_to_everyone if {
	every groups in [["agents"], ["ops"]] {
		d := decide(groups, module("ansible.builtin.user", {"name": "eve", "groups": "sudo"}, []))
		d.action == "deny"
		d.rules == ["ssh.ansible_module"]
		d.reasons == ["Ansible module ansible.builtin.user creates, changes or removes an account (its password, keys, groups)"]
		decide(groups, module("ansible.builtin.reboot", {}, [])).rules == ["ssh.ansible_module"]
	}
}

test_services_and_packages_wait_for_ops if {
	d := decide(["agents"], module("ansible.builtin.systemd", {"name": "nginx", "state": "restarted"}, []))
	d.action == "hold"
	d.rules == ["ssh.ansible_privileged_module"]
	d.approvers == ["group:ops"]
}

test_a_module_writing_a_system_path_or_key_is_refused if {
	cases := {
		"/etc/passwd": "Ansible module ansible.builtin.copy writes /etc/passwd: a system path",
		"/home/deploy/.ssh/authorized_keys": "Ansible module ansible.builtin.copy writes /home/deploy/.ssh/authorized_keys: an SSH key directory",
		"/home/deploy/x/../../../etc/shadow": "Ansible module ansible.builtin.copy writes /home/deploy/x/../../../etc/shadow: a secret",
	}
	every path, reason in cases {
		d := decide(["ops"], module("ansible.builtin.copy", {"dest": path}, write(path)))
		d.rules == ["ssh.ansible_system_write"]
		d.reasons == [reason]
	}
}

test_a_module_removing_what_the_host_stands_on_is_refused if {
	etc := decide(["agents"], module("ansible.builtin.file", {"path": "/etc", "state": "absent"}, [{"path": "/etc", "access": "remove"}]))
	etc.rules == ["ssh.ansible_system_write"]
	home := decide(["agents"], module("ansible.builtin.file", {"path": "/home/deploy", "state": "absent"}, [{"path": "/home/deploy/", "access": "remove"}]))
	home.rules == ["ssh.ansible_destructive"]
	home.reasons == ["Ansible module ansible.builtin.file removes /home/deploy/: a home"]
}

test_a_link_to_a_secret_is_refused if {
	d := decide(["agents"], module("ansible.builtin.file", {"path": "/home/deploy/x", "src": "/etc/shadow", "state": "link"}, [{"path": "/home/deploy/x", "access": "write"}, {"path": "/etc/shadow", "access": "link"}]))
	d.rules == ["ssh.ansible_system_write"]
	d.reasons == ["Ansible module ansible.builtin.file links to /etc/shadow: a secret"]
}

test_slurp_of_a_secret_or_credential_is_refused if {
	shadow := decide(["ops"], module("ansible.builtin.slurp", {"src": "/etc/shadow"}, [{"path": "/etc/shadow", "access": "read"}]))
	shadow.rules == ["ssh.ansible_secret_read"]
	aws := decide(["ops"], module("ansible.builtin.slurp", {"src": "~/.aws/credentials"}, [{"path": "/home/deploy/.aws/credentials", "access": "read"}]))
	aws.rules == ["ssh.ansible_secret_read"]
}

test_a_path_tollgate_cannot_resolve_is_held if {
	d := decide(["agents"], module("ansible.builtin.copy", {"dest": "~root/x"}, write("~root/x")))
	d.action == "hold"
	d.rules == ["ssh.ansible_unjudged_path"]
}

test_an_unread_upload_is_held if {
	unread := object.union(module("ansible.builtin.ping", {}, []), {
		"ansible": [],
		"opaque": [{"argv": ["python3", "/home/deploy/.ansible/tmp/t/AnsiballZ.py"], "why": "unread_upload"}],
		"uploads": [{"path": "/home/deploy/.ansible/tmp/t/AnsiballZ.py", "kind": "unreadable", "sha256": "00", "why": "a collection's module"}],
	})
	d := decide(["agents"], unread)
	d.action == "hold"
	d.rules == ["ssh.opaque_command"]
}

test_the_commands_of_the_command_module_are_judged if {
	rm := object.union(module("ansible.builtin.command", {"_raw_params": "rm -rf /"}, []), {"commands": [["python3", "/home/deploy/.ansible/tmp/t/AnsiballZ.py"], ["rm", "-rf", "/"]]})
	decide(["ops"], rm).rules == ["ssh.destructive_command"]
}

# A session whose home is a system path (a service account's, /var/lib/app) uploads
# Ansible's modules to its own .ansible/tmp; nothing else there, nor to another home's.
upload_in(root, path) := {"request": "sftp", "sftp": {
	"operation": "open", "direction": "upload", "path": path, "target_path": null, "root": root,
}}

test_ansible_temporary_folder_in_a_system_home_takes_uploads if {
	d := decide(["agents"], upload_in("/var/lib/app", "/var/lib/app/.ansible/tmp/ansible-tmp-1/AnsiballZ_ping.py"))
	d.action == "allow"
	every ssh in [
		upload_in("/var/lib/app", "/var/lib/app/app.conf"),
		upload_in("/var/lib/app", "/var/lib/app/.ansible/tmp/../../db/x"),
		upload_in("/var/lib/app", "/var/lib/other/.ansible/tmp/x"),
		upload_in("", "/var/lib/app/.ansible/tmp/x"),
	] {
		decide(["agents"], ssh).rules == ["ssh.sftp_system_write"]
	}
}

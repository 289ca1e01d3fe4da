# Hosts reached through the SSH front (targets of protocol ssh): decided on input.ssh, what
# the front read a session's request to mean — a command (`exec`), a line of an interactive
# shell (`line`), an SFTP operation, a forward, a subsystem. Commands are judged as a
# model's tool calls are (shell.rego); file transfers go through SFTP, decided per path.
package tollgate

import rego.v1

# Read only for exchanges this file can concern (ssh_exchange): the embedded engine pays
# for every rule it evaluates, fired or not, and most exchanges are of other protocols.
ssh_exchange if input.target.protocol == "ssh"

ssh_exchange if input.ssh != null

denials contains x if {
	ssh_exchange
	some x in ssh_denials
}

holds contains x if {
	ssh_exchange
	some x in ssh_holds
}

# -- what was read --------------------------------------------------------------------

# An ssh target's request arrives read, as one of the kinds below; an SFTP operation names
# absolute paths (the relay names them as the host resolves them). Anything else cannot be
# judged.
ssh_denials contains {"rule": "ssh.unread", "reason": reason} if {
	input.target.protocol == "ssh"
	some reason in ssh_unread
}

ssh_requests := {"exec", "shell", "line", "sftp", "forward", "subsystem"}

sftp_operations := {"open", "remove", "rename", "mkdir", "rmdir", "setstat", "symlink", "link", "list"}

ssh_unread contains "the SSH request was not read (input.ssh missing)" if not is_object(input.ssh)

ssh_unread contains sprintf("unknown SSH request: %v", [object.get(input.ssh, "request", null)]) if {
	is_object(input.ssh)
	not ssh_request_known
}

ssh_unread contains sprintf("unknown SFTP operation: %v", [object.get(ssh_sftp, "operation", null)]) if {
	input.ssh.request == "sftp"
	not sftp_operation_known
}

ssh_unread contains sprintf("SFTP %s path is not absolute: %v", [ssh_sftp.operation, path]) if {
	some path in sftp_named_paths
	not absolute_path(path)
}

# Past this many segments a path is not judged (resolving one costs their square).
ssh_unread contains sprintf("SFTP %s path has more than %d segments", [ssh_sftp.operation, max_path_segments]) if {
	some path in sftp_named_paths
	absolute_path(path)
	not judged_path(path)
}

max_path_segments := 256

# Negations of `in` go through rules of their own: on OPA, `not x in s` is false when x is
# undefined (a key the request lacks), where regorus finds it true.
ssh_request_known if input.ssh.request in ssh_requests

sftp_operation_known if ssh_sftp.operation in sftp_operations

# The SFTP operation of an sftp request ({} when it comes in no readable shape).
ssh_sftp := input.ssh.sftp if {
	input.ssh.request == "sftp"
	is_object(input.ssh.sftp)
} else := {}

# The paths an SFTP operation names: its path, and the other end of a rename or a link.
sftp_named_paths contains object.get(ssh_sftp, "path", null) if ssh_sftp.operation in sftp_operations

sftp_named_paths contains object.get(ssh_sftp, "target_path", null) if {
	ssh_sftp.operation in {"rename", "symlink", "link"}
}

absolute_path(path) if {
	is_string(path)
	startswith(path, "/")
}

# -- commands: exec, and each line of an interactive shell ----------------------------

# The commands of an exec or a line, as the shell reader read them; without that reading
# (a hand-built input), the argv as sent.
ssh_commands := argvs(input.ssh.commands) if {
	input.ssh.request in {"exec", "line"}
	is_array(input.ssh.commands)
} else := argvs([input.ssh.argv]) if {
	input.ssh.request in {"exec", "line"}
} else := []

ssh_opaque := opaques(input.ssh.opaque) if {
	input.ssh.request in {"exec", "line"}
} else := []

# A destructive command is refused to everyone, as in a tool call or a kubectl exec.
ssh_denials contains {"rule": "ssh.destructive_command", "reason": what} if {
	some what in ssh_destructive
}

ssh_destructive contains sprintf("destructive command: %s", [concat(" ", argv)]) if {
	some argv in ssh_commands
	destructive_command(argv)
}

ssh_destructive contains sprintf("destructive command: %s (%s)", [concat(" ", o.argv), o.why]) if {
	some o in ssh_opaque
	destructive_opaque(o)
}

ssh_destructive contains sprintf("output written to %s", [path]) if {
	input.ssh.request in {"exec", "line"}
	some path in array_or_empty(input.ssh.writes)
	is_string(path)
	destroying_write(path)
}

# A command that reads or writes a credential file (credentials.rego), or reads a folder
# holding them whole, is refused to everyone. An SSH command runs in the account's home:
# `.` is one (`tar czf - .`).
ssh_denials contains {"rule": "ssh.credential", "reason": what} if {
	input.ssh.request in {"exec", "line"}
	some what in credentials_in_commands(ssh_commands, ssh_opaque, object.get(input.ssh, "writes", []), [object.get(input.ssh, "command", null)], true)
}

# Acting as another user, or on the host's services, waits for an operator. Each command
# is named: `sudo systemctl restart nginx` is both.
ssh_holds contains {
	"rule": "ssh.privileged_command",
	"reason": sprintf("privileged command: %s", [concat(" ", argv)]),
	"approvers": ["group:ops"],
	"seconds": 300,
} if {
	some argv in ssh_commands
	privileged_command(argv)
}

privileged_command(argv) if argv[0] in {"sudo", "sudoedit", "su", "doas", "pkexec", "runuser"}

privileged_command(argv) if {
	argv[0] in {"systemctl", "service"}
	some arg in array.slice(argv, 1, count(argv))
	arg in service_actions
}

# What starts, stops or changes a service (`service nginx restart`, `systemctl enable
# --now x`), with the variants of each (`try-restart`, `reload-or-restart`, `unmask`).
service_actions := {
	"start", "stop", "restart", "try-restart", "condrestart", "reload", "force-reload",
	"reload-or-restart", "try-reload-or-restart", "enable", "reenable", "disable", "mask",
	"unmask", "kill", "isolate",
}

# What runs is only known when it runs (shell.rego's `opaque`): an operator reads it
# first, unless what can be read is destructive (refused above).
ssh_holds contains {
	"rule": "ssh.opaque_command",
	"reason": sprintf("runs what cannot be read (%s): %s", [o.why, concat(" ", o.argv)]),
	"approvers": ["group:ops"],
	"seconds": 300,
} if {
	some o in ssh_opaque
	opaque_held(o)
}

# A write to a file that steers what later lines or logins run (shell.rego's state_file:
# `.bashrc`, `~/bin/x`, `.gitconfig`) changes the session's state as `alias` does: held.
ssh_holds contains {
	"rule": "ssh.state_file_write",
	"reason": sprintf("writes a file that changes what later commands run: %s", [path]),
	"approvers": ["group:ops"],
	"seconds": 300,
} if {
	input.ssh.request in {"exec", "line"}
	some path in array_or_empty(input.ssh.writes)
	is_string(path)
	state_file(path)
	not opaque_allowed
}

# Destroying data on a production host waits for an operator: a file removed (`rm`,
# `unlink`, `shred`, SFTP's remove), emptied or written over from its start (a `>`
# redirection, `truncate -s0`, `install /dev/null f`, `cp /dev/null f`, `sed -i`: the
# reader's `overwrites`; SFTP's open that truncates, an empty upload over a file, a
# setstat of its size). No rollback brings it back. Scratch places are spared: the
# temporary folders (for commands), the devices that keep nothing, Ansible's own
# temporary folder.
ssh_holds contains {
	"rule": "ssh.data_destroyed",
	"reason": sprintf("destroys data on a production host: %s", [concat("; ", sort([w | some w in ssh_data_destroyed]))]),
	"approvers": ["group:ops"],
	"seconds": 300,
} if {
	production_environment(input.target.environment)
	count(ssh_data_destroyed) > 0
}

ssh_data_destroyed contains sprintf("%s removed (%s)", [path, argv[0]]) if {
	input.ssh.request in {"exec", "line"}
	some argv in ssh_commands
	argv[0] in {"rm", "unlink", "shred"}
	some path in array.slice(argv, 1, count(argv))
	not startswith(path, "-")
	not scratch_path(path)
}

ssh_data_destroyed contains sprintf("%s written over", [path]) if {
	input.ssh.request in {"exec", "line"}
	some path in array_or_empty(input.ssh.overwrites)
	is_string(path)
	not scratch_path(path)
}

ssh_data_destroyed contains sprintf("%s removed (SFTP)", [ssh_sftp.path]) if {
	ssh_sftp.operation == "remove"
	not sftp_scratch(ssh_sftp.path)
}

ssh_data_destroyed contains sprintf("%s truncated (SFTP %s)", [ssh_sftp.path, ssh_sftp.operation]) if {
	ssh_sftp.truncates == true
	not sftp_scratch(ssh_sftp.path)
}

# An SFTP operation names its file deliberately: only the devices and Ansible's own
# folder are spared, not the temporary folders a command's build writes in.
sftp_scratch(path) if kept_nothing(path)

scratch_path(path) if regex.match(`^/(tmp|var/tmp|dev/shm)(/|$)`, normal_path(path))

scratch_path(path) if kept_nothing(path)

# Devices that keep nothing, and Ansible's own temporary folder (its modules' files).
kept_nothing(path) if regex.match(`^/dev/(null|zero|stdout|stderr|tty|fd/[0-9]+)$`, normal_path(path))

kept_nothing(path) if regex.match(`(^|/)\.ansible/tmp(/|$)`, path)

# A line edited with keys tollgate does not follow (tab completion, history, cursor
# movement) may run something other than what tollgate read: only a line read whole passes.
ssh_denials contains {
	"rule": "ssh.unreadable_line",
	"reason": "a line edited with keys tollgate does not follow (completion, history, cursor movement): type it whole",
} if {
	input.ssh.request == "line"
	not input.ssh.readable == true
}

# scp's and sftp-server's own protocols, run through exec, carry files tollgate cannot
# judge path by path; through the SFTP subsystem each operation is decided. OpenSSH's scp
# speaks SFTP (since 9.0) unless given -O.
ssh_denials contains {
	"rule": "ssh.transfer_command",
	"reason": sprintf("file transfer through exec (%s): transfers go through SFTP (sftp, scp), decided path by path", [concat(" ", argv)]),
} if {
	input.ssh.request == "exec"
	some argv in ssh_commands
	transfer_command(argv)
}

transfer_command(argv) if argv[0] == "sftp-server"

# rsync's server side writes (or sends) what the client names, as scp's does.
transfer_command(argv) if {
	argv[0] == "rsync"
	"--server" in argv
}

# scp's server side: -t (receive) or -f (send), alone or after flags that take no value
# (`-pt`, `-prf`); a flag that takes one ends the group (`-oStrictHostKeyChecking=no`).
transfer_command(argv) if {
	argv[0] == "scp"
	some arg in argv
	regex.match(`^-[12346ABCOTdpqRrsv]*[tf]`, arg)
}

# -- forwards and subsystems ----------------------------------------------------------

# No tunnel through the gateway: a forwarded port, socket, agent or display carries bytes
# it cannot read.
ssh_denials contains {"rule": "ssh.forward", "reason": forward_what(forward)} if {
	input.ssh.request == "forward"
	forward := object.union({"kind": null, "host": null, "port": null}, object_or_empty(input.ssh.forward))
}

forward_what(f) := sprintf("local port forwarding to %v:%v", [f.host, f.port]) if {
	f.kind == "local_port"
} else := sprintf("remote port forwarding from %v:%v", [f.host, f.port]) if {
	f.kind == "remote_port"
} else := sprintf("local socket forwarding to %v", [f.host]) if {
	f.kind == "local_socket"
} else := sprintf("remote socket forwarding from %v", [f.host]) if {
	f.kind == "remote_socket"
} else := "agent forwarding" if {
	f.kind == "agent"
} else := "X11 forwarding" if {
	f.kind == "x11"
} else := sprintf("forwarding (%v)", [f.kind])

ssh_denials contains {"rule": "ssh.subsystem", "reason": sprintf("subsystem %v", [object.get(input.ssh, "subsystem", null)])} if {
	input.ssh.request == "subsystem"
	not input.ssh.subsystem == "sftp"
}

object_or_empty(x) := x if {
	is_object(x)
} else := {}

# -- SFTP -----------------------------------------------------------------------------

# Nobody changes the host's system files over SFTP, links to them or to its secrets (a
# link is later read or written by its own path), or touches SSH keys (who may log in
# without the gateway).
ssh_denials contains {
	"rule": "ssh.sftp_system_write",
	"reason": sprintf("SFTP %s of %s: %s", [sftp_verb, path, kind]),
} if {
	some path in sftp_written
	judged_path(path)
	kind := sftp_protected(resolved_path(path))
	kind != null
	not session_scratch(resolved_path(path), kind)
}

# Ansible's own temporary folder in the session's home is the session's scratch wherever
# the home is (a service account's under /var/lib too): the modules' files it uploads
# there are run only as what they say is judged. Only the system-path reason is waived
# there (a secret's name, which sftp_protected checks first, stays refused).
session_scratch(path, "a system path") if {
	sftp_root != ""
	startswith(path, concat("", [sftp_root, "/.ansible/tmp/"]))
}

sftp_verb := "upload" if {
	ssh_sftp.operation == "open"
} else := ssh_sftp.operation

sftp_written contains ssh_sftp.path if {
	ssh_sftp.operation == "open"
	not sftp_direction_in({"download", "none"})
}

sftp_written contains path if {
	ssh_sftp.operation in {"remove", "rename", "mkdir", "rmdir", "setstat", "symlink", "link"}
	some path in sftp_named_paths
}

# What a written path is, or null when it is none of the host's own. Never undefined: the
# compiled program takes an assignment that finds nothing for a value.
sftp_protected(path) := "a secret" if {
	secret_path(path)
} else := "a system path" if {
	destructive_write(path)
} else := "a system path" if {
	system_path(path)
} else := "a system path" if {
	regex.match(`^/(root|proc|dev|run|lib32|libx32|var/lib|var/log|var/spool)(/|$)`, path)
} else := "an SSH key directory" if {
	regex.match(`/\.ssh(/|$)`, path)
} else := sprintf("a credential (%s)", [kinds]) if {
	kinds := concat(", ", sort([hit.kind | some hit in credentials_in_path(path)]))
	kinds != ""
} else := null

# Removing or renaming (either end) what the host or the session stands on is destructive,
# as `rm -rf` or `mv` of it is in a command (shell.rego's system_path): the root, a
# top-level directory, a home, a system directory's own folders (`/var/www`, `/opt/app`),
# and the session's root (the host's starting directory) or a folder above it. System
# files, secrets and credentials are ssh.sftp_system_write's, links to them too (a link
# never replaces a name: SFTP's symlink and link fail on one that exists).
ssh_denials contains {
	"rule": "ssh.sftp_destructive",
	"reason": sprintf("SFTP %s of %s: %s", [ssh_sftp.operation, path, what]),
} if {
	some path in sftp_moved
	judged_path(path)
	sftp_protected(resolved_path(path)) == null
	what := sftp_destroys(resolved_path(path))
	what != null
}

# The names a removal or a rename takes away (a rename's both ends: the new one replaced).
sftp_moved contains path if {
	ssh_sftp.operation in {"remove", "rmdir", "rename"}
	some path in sftp_named_paths
}

# What a resolved path is to the host or the session, or null. A function of ssh.rego's
# own until shell.rego's destructive targets take the session's root. (The root itself is a
# system path: ssh.sftp_system_write's.)
sftp_destroys(path) := "a top-level directory" if {
	regex.match(`^/[^/]+$`, path)
} else := "a home" if {
	regex.match(`^/(home|Users)/[^/]+$`, path)
} else := "a system directory's folder" if {
	regex.match(`^/(var|opt|srv|usr/local|mnt|media|snap)/[^/]+$`, path)
} else := "the session's root" if {
	path == sftp_root
} else := "a folder above the session's root" if {
	startswith(sftp_root, concat("", [path, "/"]))
} else := null

# The session's root as the host resolves it ("" when the relay did not say).
sftp_root := resolved_path(ssh_sftp.root) if {
	judged_path(ssh_sftp.root)
} else := ""

# Whether an open's direction is one of `directions`. An open whose direction is unknown or
# missing is none of them: it is judged as a read and as a write.
sftp_direction_in(directions) if ssh_sftp.direction in directions

# Nobody reads the host's secrets over SFTP: its password hashes, its host keys, anyone's
# private SSH keys.
ssh_denials contains {
	"rule": "ssh.sftp_secret_read",
	"reason": sprintf("SFTP download of %s: a secret", [ssh_sftp.path]),
} if {
	ssh_sftp.operation == "open"
	not sftp_direction_in({"upload", "none"})
	judged_path(ssh_sftp.path)
	secret_path(resolved_path(ssh_sftp.path))
}

# Nor a credential file of the list (credentials.rego) that is no secret_path.
ssh_denials contains {
	"rule": "ssh.credential",
	"reason": sprintf("SFTP download of %s: a credential (%s)", [ssh_sftp.path, hit.kind]),
} if {
	ssh_sftp.operation == "open"
	not sftp_direction_in({"upload", "none"})
	judged_path(ssh_sftp.path)
	not secret_path(resolved_path(ssh_sftp.path))
	some hit in credentials_in_path(resolved_path(ssh_sftp.path))
}

secret_path(path) if regex.match(`^/etc/g?shadow-?$`, path)

secret_path(path) if regex.match(`^/etc/ssh/ssh_host_[^/]*_key$`, path)

secret_path(path) if {
	regex.match(`/\.ssh/id_[^/]*$`, path)
	not endswith(path, ".pub")
}

# A path the SFTP rules judge: absolute, and at most max_path_segments long (ssh.unread
# refuses the others).
judged_path(path) if {
	absolute_path(path)
	count(split(path, "/")) <= max_path_segments
}

# An absolute path as the host resolves it, symbolic links aside: empty segments, `.` and
# `..` (which climbs no higher than `/`) resolved, so `/tmp/../etc/shadow` is
# `/etc/shadow`. With the depth after each segment (each name one deeper, each `..` one
# shallower, never above `/`), a name stays unless a later depth falls below its own.
resolved_path(path) := sprintf("/%s", [concat("/", kept)]) if {
	segments := [s | some s in split(path, "/"); not s in {"", "."}]
	steps := [path_step(s) | some s in segments]
	sums := [total | some i, _ in steps; total := sum(array.slice(steps, 0, i + 1))]
	depths := [depth |
		some i, total in sums
		depth := total - min(array.concat([0], array.slice(sums, 0, i + 1)))
	]
	kept := [segments[i] |
		some i, segment in segments
		segment != ".."
		not climbed_above(depths, i)
	]
}

path_step(segment) := -1 if {
	segment == ".."
} else := 1

# Whether a later `..` climbs above segment i. A rule rather than an `every` in the
# comprehension: the compiled program takes such an `every` for true whatever it finds.
climbed_above(depths, i) if {
	some j in numbers.range(i, count(depths) - 1)
	depths[j] < depths[i]
}

# -- Ansible modules ------------------------------------------------------------------

# An exec that runs a file this session uploaded over SFTP is judged by what the file says
# (extproc/ssh/uploads.py, extproc/interpret/ansible.py): input.ssh.ansible lists the
# ansible-core modules it runs with their arguments (`command` and `shell` modules' command
# lines are in input.ssh.commands already), input.ssh.uploads every such file. A file
# tollgate cannot read (another release, a collection's module, a program of its own) is
# opaque (`unread_upload`), held by ssh.opaque_command like any other.
ssh_ansible := [m |
	input.ssh.request == "exec"
	some m in array_or_empty(input.ssh.ansible)
	is_object(m)
	is_string(m.module)
]

# Refused to everyone, whoever approves: what takes the host away from everyone (a
# reboot), or changes who may log in to it and as whom (accounts, groups): an operator does
# that by hand, not through an agent's playbook.
ansible_refused_modules := {
	"ansible.builtin.reboot": "reboots the host",
	"ansible.builtin.user": "creates, changes or removes an account (its password, keys, groups)",
	"ansible.builtin.group": "creates, changes or removes a group (who holds its rights)",
}

ssh_denials contains {
	"rule": "ssh.ansible_module",
	"reason": sprintf("Ansible module %s %s", [m.module, ansible_refused_modules[m.module]]),
} if {
	some m in ssh_ansible
	ansible_refused_modules[m.module]
}

# Held for group ops, as `sudo` and `systemctl restart` are: what changes the host's
# services, packages, scheduled jobs, firewall, name, or which hosts it trusts.
ansible_privileged_modules := {
	"ansible.builtin.service", "ansible.builtin.systemd", "ansible.builtin.systemd_service",
	"ansible.builtin.sysvinit", "ansible.builtin.apt", "ansible.builtin.dnf",
	"ansible.builtin.dnf5", "ansible.builtin.yum", "ansible.builtin.package",
	"ansible.builtin.pip", "ansible.builtin.apt_repository", "ansible.builtin.apt_key",
	"ansible.builtin.rpm_key", "ansible.builtin.yum_repository",
	"ansible.builtin.deb822_repository", "ansible.builtin.debconf", "ansible.builtin.dpkg_selections",
	"ansible.builtin.cron", "ansible.builtin.iptables", "ansible.builtin.hostname",
	"ansible.builtin.known_hosts", "ansible.builtin.mount_facts", "ansible.builtin.expect",
}

ssh_holds contains {
	"rule": "ssh.ansible_privileged_module",
	"reason": sprintf("Ansible module %s (services, packages, jobs, firewall, trust)", [m.module]),
	"approvers": ["group:ops"],
	"seconds": 300,
} if {
	some m in ssh_ansible
	m.module in ansible_privileged_modules
}

# The files a module writes, removes or links to are judged as an SFTP upload, removal or
# link of them is: `copy dest=/etc/passwd`, `file path=/etc state=absent`,
# `lineinfile path=~/.ssh/authorized_keys`.
ssh_denials contains {
	"rule": "ssh.ansible_system_write",
	"reason": sprintf("Ansible module %s %s %s: %s", [m.module, ansible_verb[p.access], p.path, kind]),
} if {
	some pair in ansible_paths
	[m, p] := pair
	p.access in {"write", "remove", "link"}
	kind := sftp_protected(resolved_path(p.path))
	kind != null
}

ssh_denials contains {
	"rule": "ssh.ansible_destructive",
	"reason": sprintf("Ansible module %s removes %s: %s", [m.module, p.path, what]),
} if {
	# sftp_destroys: a top-level directory, a home, a system directory's folder (an exec
	# names no session's root).
	some pair in ansible_paths
	[m, p] := pair
	p.access == "remove"
	sftp_protected(resolved_path(p.path)) == null
	what := sftp_destroys(resolved_path(p.path))
	what != null
}

# A module that returns a file's content (slurp: base64, which the output's masking cannot
# read) is refused the host's secrets and credentials, as an SFTP download is.
ssh_denials contains {
	"rule": "ssh.ansible_secret_read",
	"reason": sprintf("Ansible module %s reads %s: %s", [m.module, p.path, kind]),
} if {
	some pair in ansible_paths
	[m, p] := pair
	p.access == "read"
	kind := sftp_protected(resolved_path(p.path))
	kind != null
	kind != "a system path"
}

ansible_verb := {"write": "writes", "remove": "removes", "link": "links to", "read": "reads"}

# Each module's judged paths: absolute (interpret/ssh.py resolves `~` and relative ones
# from the account's home), at most max_path_segments long.
ansible_paths contains [m, p] if {
	some m in ssh_ansible
	some p in array_or_empty(m.paths)
	is_object(p)
	judged_path(p.path)
}

# A module's path tollgate could not resolve (`~other/x`, a relative path without the
# session's home) is not judged: held.
ssh_holds contains {
	"rule": "ssh.ansible_unjudged_path",
	"reason": sprintf("Ansible module %s acts on %v, which tollgate cannot resolve", [m.module, p.path]),
	"approvers": ["group:ops"],
	"seconds": 300,
} if {
	some m in ssh_ansible
	some p in array_or_empty(m.paths)
	not judged_path(object.get(p, "path", null))
}

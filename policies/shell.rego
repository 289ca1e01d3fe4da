# Shell commands, as the shell reader (extproc/interpret/shell.py) gives them: argv
# lists, wrappers and nested scripts unwrapped. What makes a command destructive is
# decided here once, for a model's tool calls (llm.rego) and a kubectl exec (k8s.rego).
# A destructive command destroys by what its argv says, whatever runs it.
package tollgate

import rego.v1

# The argvs of `commands` (a list of argv lists), whatever shape it arrives in: an item
# that is no list of strings is no command.
argvs(commands) := [argv |
	some argv in array_or_empty(commands)
	is_array(argv)
	every arg in argv { is_string(arg) }
]

# A command is destructive by what it does (destructive_effect), also when a program the
# pack does not know runs it: `mywrap -q rm -rf /` is judged as `rm -rf /`. A program of
# `operand_runners_known` is never read so: it runs nothing (`echo rm -rf /`), or the shell
# reader reads through it already (`sudo`, `timeout 5`, `kubectl exec ... --`).
destructive_command(argv) if destructive_effect(argv)

destructive_command(argv) if {
	not argv[0] in operand_runners_known
	some i, word in argv
	i > 0
	name := program_name(word)
	destructive_program(name)
	destructive_effect(array.concat([name], array.slice(argv, i + 1, count(argv))))
}

program_name(word) := word if {
	not contains(word, "/")
} else := regex.replace(word, `^.*/`, "")

destructive_program(name) if name in destructive_programs

destructive_program(name) if startswith(name, "mkfs")

# The programs destructive_effect judges (mkfs* too).
destructive_programs := {
	"rm", "unlink", "dd", "shred", "wipefs", "blkdiscard", "mke2fs", "mkswap", "mkdosfs",
	"mkntfs", "shutdown", "reboot", "halt", "poweroff", "systemctl", "loginctl", "init",
	"telinit", "chmod", "chown", "chgrp", "find", "cp", "mv", "install", "ln", "rsync", "tee",
	"truncate",
}

# Programs whose operands are not read as a command (data): those that run none, and the
# wrappers the shell reader reads through (extproc/interpret/shell.py; a test keeps this
# list a superset of the reader's).
operand_runners_known := {
	"echo", "printf", "grep", "egrep", "fgrep", "rg", "ag", "ack", "man", "info", "help",
	"whatis", "apropos", "which", "whereis", "type", "hash", "alias", "unalias", "history",
	"ls", "cat", "less", "more", "head", "tail", "wc", "file", "stat", "touch", "mkdir",
	"logger", "test", "[", "true", "false", ":", "function",
	"sudo", "doas", "env", "nohup", "nice", "timeout", "time", "exec", "command", "xargs",
	"busybox", "builtin", "setsid", "stdbuf", "chroot", "eval", "ssh", "watch", "coproc", "flock",
	"pkexec", "nsenter", "unshare", "ionice", "taskset", "caffeinate", "strace", "ltrace",
	"systemd-run", "setpriv", "runuser", "chrt", "setarch", "gosu", "su-exec", "setuidgid",
	"prlimit", "numactl", "unbuffer", "faketime", "torsocks", "proxychains", "proxychains4",
	"firejail", "fakeroot", "parallel", "screen", "kubectl", "oc", "docker", "podman",
	"nerdctl", "tmux", "su", "script", "sg", "sh", "bash", "zsh", "dash", "ksh", "ash", "mksh",
	"fish", "yash", "find",
}

# -- where destroying is destructive (data) ---------------------------------------------
# The session's root folder is where its commands start: the login's home for an SSH exec,
# unknown for a tool call or a shell's line. The root folder itself (`.`, `*`) and what
# climbs above it (`..`, `../x`) are destructive targets whatever the root is: the shell
# reader follows `cd`/`pushd` and folds `..`, so `cd ..; rm -rf x` reads as `rm -rf ../x`
# and `cd /etc && rm -rf *` as `rm -rf /etc/*`; a folder it cannot know (`cd "$D"`) stays
# computed (`$D/x`), as a variable is (system_path).
# `system_trees`: folders whose every path is the system's. `system_folders`: folders whose
# entries are each the system's (`/var/log`, `/home/bob`, `/tmp`), not what is below them.
system_trees := [
	"/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/root",
	"/sys", "/proc", "/dev", "/snap",
]

system_folders := ["/", "/home", "/Users", "/var", "/var/lib", "/opt", "/srv", "/mnt", "/media", "/run"]

system_trees_regex := sprintf(`^(%s)(/|$)`, [concat("|", system_trees)])

system_folders_regex := sprintf(`^(%s)/[^/]+$`, [concat("|", [trim_suffix(f, "/") | some f in system_folders])])

# A system path (system_path), what is under a system tree or is an entry of a system
# folder, or what climbs above the root folder: a recursive chmod or a find -delete there
# is destructive.
system_target(path) if system_path(path)

system_target(path) if regex.match(`^\.\.(/|$)`, path)

system_target(path) if regex.match(system_trees_regex, normal_path(path))

system_target(path) if regex.match(system_folders_regex, normal_path(path))

# rm, recursive, at a system target or at everything in the root folder.
destructive_effect(argv) if {
	argv[0] == "rm"
	some flag in argv
	recursive_rm_flag(flag)
	some path in argv
	rm_target(path)
}

# Removing a disk or a system file, recursive or not (`rm -f /etc/passwd`).
destructive_effect(argv) if {
	argv[0] in {"rm", "unlink"}
	some path in array.slice(argv, 1, count(argv))
	destructive_write(path)
}

# GNU getopt takes any unambiguous prefix of a long option (`--rec`, `--r`).
recursive_rm_flag(flag) if regex.match(`^--r(e(c(u(r(s(i(v(e)?)?)?)?)?)?)?)?$`, flag)

recursive_rm_flag(flag) if regex.match(`^-[A-Za-z]*[rR][A-Za-z]*$`, flag)

rm_target(path) if path in {"*", ".", "..", "./*", "../*"}

rm_target(path) if system_target(path)

# The root, a home or a system directory, however spelled (`//`, `/./`, a trailing `/`,
# a glob or a variable the shell would expand there: `/?*`, `$HOME`, `$(echo /)`).
system_path(path) if normal_path(path) in system_paths

system_path(path) if regex.match(`^(/+|~|\$\{?HOME\}?)[^/]*[*?\[]`, path)

system_path(path) if regex.match("^[^/]*(\\$|`)", path)

# `..` below an absolute path can climb anywhere: `/tmp/../etc`.
system_path(path) if regex.match(`^(/|~).*/\.\.(/|$)`, path)

system_paths := {
	"/", "/*", "~", "~/*", "$HOME", "${HOME}", "$HOME/*", "${HOME}/*", "/home", "/etc",
	"/usr", "/var", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/root", "/srv",
	"/dev", "/proc", "/sys", "/var/lib", "/var/log", "/usr/local", "/home/*",
}

normal_path(path) := "/" if {
	regex.match(`^/[/.]*$`, path)
} else := trim_suffix(regex.replace(regex.replace(path, `/(\./)+`, "/"), `/+`, "/"), "/")

destructive_effect(argv) if regex.match(`^(mkfs(\..+)?|mke2fs|mkswap|mkdosfs|mkntfs)$`, argv[0])

destructive_effect(argv) if {
	argv[0] in {"systemctl", "loginctl"}
	some arg in argv
	arg in {"poweroff", "reboot", "halt", "kexec", "rescue", "emergency", "suspend", "hibernate"}
}

destructive_effect(argv) if {
	argv[0] in {"init", "telinit"}
	some arg in argv
	arg in {"0", "6"}
}

# A shell with no script operand runs what reaches its stdin (`curl ... | sh`,
# `base64 -d | bash`, `bash <<< '...'`): a script no one here can read. Destructive in
# a tool call; in a kubectl exec it is the session itself (`-- sh`), whose stdin is a
# tunnel tollgate does not read.
stdin_shell(argv) if {
	argv[0] in {"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish"}
	every arg in array.slice(argv, 1, count(argv)) {
		startswith(arg, "-")
	}
}

# dd writing onto a disk or a system file (`of=/dev/null` is none).
destructive_effect(argv) if {
	argv[0] == "dd"
	some arg in argv
	startswith(arg, "of=")
	destructive_write(substring(arg, 3, -1))
}

destructive_effect(argv) if argv[0] in {"shred", "wipefs", "blkdiscard", "shutdown", "reboot", "halt", "poweroff"}

# Copying, moving, linking or writing over a disk or a system file: `cp x /usr/bin/ls`,
# `mv x /etc/passwd`, `install x /sbin/init`, `tee /etc/hosts`, `truncate -s0 /etc/shadow`,
# `cp img /dev/sda`. The destination is the last operand or `-t DIR`.
destructive_effect(argv) if {
	argv[0] in {"cp", "mv", "install", "ln", "rsync"}
	not "--server" in argv # rsync's far end over SSH: ssh.transfer_command's
	destructive_write(argv[count(argv) - 1])
}

destructive_effect(argv) if {
	argv[0] in {"cp", "mv", "install", "ln"}
	some i, flag in argv
	flag in {"-t", "--target-directory"}
	destructive_write(argv[i + 1])
}

destructive_effect(argv) if {
	argv[0] in {"cp", "mv", "install", "ln"}
	some flag in argv
	startswith(flag, "--target-directory=")
	destructive_write(substring(flag, 19, -1))
}

destructive_effect(argv) if {
	argv[0] in {"tee", "truncate"}
	some path in array.slice(argv, 1, count(argv))
	destructive_write(path)
}

# mv takes its sources away: moving a system file or a system target is removing it
# (`mv /etc /tmp/x`, `mv /usr/bin/sudo x`).
destructive_effect(argv) if {
	argv[0] == "mv"
	some path in array.slice(argv, 1, count(argv) - 1)
	moved_away(path)
}

moved_away(path) if destructive_write(path)

moved_away(path) if system_target(path)

destructive_effect(argv) if {
	argv[0] in {"chmod", "chown", "chgrp"}
	some flag in argv
	regex.match(`^(--recursive|-[A-Za-z]*R[A-Za-z]*)$`, flag)
	some path in argv
	system_target(path)
}

# find deleting (`-delete`, or `-exec`/`-execdir`/`-ok` running rm, unlink or shred on
# what it finds) from a system target, or everything in the root folder: from `.` (the
# default start) with no test choosing what (`find . -delete`, `find . -type f -exec rm
# {} +`; `find . -name '*.pyc' -delete` chooses).
destructive_effect(argv) if {
	argv[0] == "find"
	find_deletes(argv)
	some path in find_starts(argv)
	find_destroys(path, argv)
}

find_deletes(argv) if "-delete" in argv

find_deletes(argv) if {
	some i, word in argv
	word in {"-exec", "-execdir", "-ok", "-okdir"}
	program_name(argv[i + 1]) in {"rm", "unlink", "shred"}
}

# The start points: the operands before the expression (`find -L / -delete`: /); `.` if none.
find_starts(argv) := starts if {
	ends := [i | some i, word in argv; i > 0; find_expression(word)]
	starts := [w | some w in array.slice(argv, 1, min(array.concat(ends, [count(argv)]))); not w in {"-H", "-L", "-P"}]
	count(starts) > 0
} else := ["."]

find_expression(word) if {
	startswith(word, "-")
	not word in {"-H", "-L", "-P"}
}

find_expression(word) if word in {"(", "!", ","}

find_destroys(path, _) if system_target(path)

find_destroys(path, argv) if {
	path in {".", "./", "*", "./*"}
	not find_chooses(argv)
}

find_chooses(argv) if {
	some word in argv
	word in {
		"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex",
		"-iregex", "-lname", "-ilname", "-newer", "-mtime", "-mmin", "-atime", "-amin",
		"-ctime", "-cmin", "-size", "-empty", "-user", "-group", "-perm", "-samefile",
		"-inum", "-links",
	}
}

# The fork bomb `:(){ :|:& };:` defines a function named ":" (the shell reader gives a
# definition as ["function", name]).
destructive_effect(argv) if argv == ["function", ":"]

# Opaque commands (the shell reader's `opaque`: {"argv", "why"}): what runs is only known
# when it runs, a computed program (`$(echo rm) -rf /`), a script from a pipe or a
# substitution (`sh -c "$(curl ...)"`), another language's code (`python -c`), operands
# from stdin (`xargs rm -rf`, `find / -exec rm -rf {} +`), a recursive function. Such a
# command is destructive when what can be read of it is, whatever fills the unknown:
# operands that may be `/`, a program that may be `rm`.
opaques(list) := [o |
	some o in array_or_empty(list)
	is_object(o)
	is_string(o.why)
	is_array(o.argv)
	every arg in o.argv { is_string(arg) }
]

destructive_opaque(o) if {
	not opaque_operands_read(o)
	destructive_command(array.concat(o.argv, ["/"]))
}

# Opaque for what its operands expand to on the host, or for what it changes later: its
# operands are as read (a glob stays in its folder, and one matching every name is read
# again as `*`; a computed operand is judged as `$x` is), not unknown ones to fill with `/`.
opaque_operands_read(o) if o.why in {"glob_operands", "computed_operand", "changes_state", "history"}

destructive_opaque(o) if {
	o.why == "computed_program"
	destructive_command(array.concat(["rm"], array.slice(o.argv, 1, count(o.argv))))
}

# A function that calls itself: the fork bomb, whatever its name (`b(){ b|b& };b`).
destructive_opaque(o) if o.why == "recursive_function"

# An opaque command waits for a human (the packs' *.opaque_* holds) unless it is
# destructive, or it only reads whatever operands it is given (`ls | xargs grep foo`,
# `find . -print0 | xargs -0 wc -l`, `ls *.txt`): what runs is known, only which files it
# reads is not, even when a file's name looks like an option (`rg` is not one of them:
# its `--pre=CMD` runs a program).
# A program that is a bare `*` is none in prose (a Markdown list's `* item`, `count(*)`
# read as shell): it is held only when destructive, as every opaque command is.
opaque_held(o) if {
	not destructive_opaque(o)
	not operands_read_only(o)
	not bare_glob(o)
	not opaque_allowed
}

# A model's or an MCP server's tool call is held for the classes a text alone hides (a
# computed program or script, inline code, operands from stdin, a fork bomb). What only a
# host's own state makes unreadable (a script file, a path not installed, a glob, a
# variable set elsewhere, a state change) is held where it runs: an SSH host's or a pod's
# shell (ssh.opaque_command, k8s.opaque_exec); a tool's `bash ./test.sh` is what coding
# agents run all day, judged as itself.
tool_call_opaque_held(o) if {
	opaque_held(o)
	o.why in {"computed_program", "computed_script", "inline_code", "stdin_operands", "too_deep", "recursive_function"}
}

# A target whose owners accept what the reader cannot read (its label `shell-opaque:
# allow`) runs it unheld, outside production: a lab host, a CI runner. Destructive and
# credential commands stay refused there.
opaque_allowed if {
	input.target.labels["shell-opaque"] == "allow"
	not production_environment(input.target.environment)
}

production_environment(name) if lower(name) in {"prod", "production", "prd", "live"}

bare_glob(o) if {
	o.why == "computed_program"
	regex.match(`^\*+$`, o.argv[0])
}

operands_read_only(o) if {
	o.why in {"stdin_operands", "glob_operands"}
	o.argv[0] in {
		"grep", "egrep", "fgrep", "cat", "head", "tail", "wc", "ls", "file", "stat",
		"du", "echo", "printf", "md5sum", "sha1sum", "sha256sum", "sha512sum", "basename",
		"dirname", "realpath", "readlink",
	}
	not reshaped_output(o.argv)
}

# Options with which a reader prints a file otherwise than as it is written: a few bytes
# at a time (`head -c 5`, `tail --bytes=3`), one match a line (`grep -o .` prints a
# character a line), colours inside a match (`grep --color=always`). What is read is as
# unknown as with any other program, and what it prints hides a secret from the output's
# masking as `base64` does: held as any other program is.
reshaped_output(argv) if {
	argv[0] in {"head", "tail"}
	some arg in argv
	regex.match(`^(-[A-Za-z0-9]*c|\+[0-9]*c|--b(y(t(es?)?)?)?(=|$))`, arg)
}

reshaped_output(argv) if {
	argv[0] in {"grep", "egrep", "fgrep"}
	some arg in argv
	regex.match(`^(-[^-efmABCdD]*o|--o|--col[a-z]*=always$)`, arg)
}

# Output redirected into a disk, the kernel's memory or a system directory's files
# (`cat /dev/zero > /dev/sda`, `> /etc/passwd`, `> /proc/sysrq-trigger`).
destructive_write(path) if regex.match(`^/dev/(sd|hd|vd|xvd|nvme|mmcblk|dm-|md|loop|nbd|sr|mapper/|disk/|mem$|kmem$|port$)`, normal_path(path))

destructive_write(path) if regex.match(`^/(etc|boot|bin|sbin|lib|lib64|usr|sys|proc/sys|proc/sysrq-trigger)(/|$)`, normal_path(path))

# A file a command writes over (the reader's `writes`: redirections, `truncate`, `sed -i`,
# a copy's destination) that is every file of a folder (`truncate -s0 *`, `cp x *`): the
# contents go as with `rm -rf *`.
destroying_write(path) if destructive_write(path)

destroying_write(path) if regex.match(`^(.*/)?\*$`, path)

# Moving, installing or linking over a device node replaces it (`mv x /dev/null`): what
# every program writing there then writes into is a file.
destructive_effect(argv) if {
	argv[0] in {"mv", "install", "ln"}
	regex.match(`^/dev/`, normal_path(argv[count(argv) - 1]))
}

# Files whose content steers what later lines or logins run: the shells' startup files,
# the folders on a login's PATH, git's and SSH's per-user hooks. A write there is held as
# an opaque line is (ssh.rego, k8s.rego).
state_file(path) if regex.match(state_files_regex, path)

state_files_regex := `(^|/)(\.(bashrc|bash_profile|bash_login|bash_logout|bash_aliases|profile|inputrc|zshrc|zshenv|zprofile|zlogin|kshrc|mkshrc|shrc|cshrc|tcshrc|gitconfig|pam_environment|curlrc|wgetrc|npmrc|pythonrc)|\.ssh/(rc|environment|config)|\.config/(fish|git)/.+|\.local/bin/[^/]+|(~|\$HOME|\$\{HOME\})/bin/[^/]+)$|^bin/[^/]+$|^/etc/(profile|bash\.bashrc|environment|ld\.so\.preload)`

# The same for a Kubernetes namespace labelled `shell-opaque: allow` (its config's labels).
opaque_allowed if {
	input.k8s.namespace_labels["shell-opaque"] == "allow"
	not production_environment(input.k8s.namespace_labels.environment)
	not production_environment(input.target.environment)
}

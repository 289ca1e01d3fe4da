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

# rm, recursive, at the root, a home, a system directory, or everything here.
destructive_command(argv) if {
	argv[0] == "rm"
	some flag in argv
	recursive_rm_flag(flag)
	some path in argv
	rm_target(path)
}

# GNU getopt takes any unambiguous prefix of a long option (`--rec`, `--r`).
recursive_rm_flag(flag) if regex.match(`^--r(e(c(u(r(s(i(v(e)?)?)?)?)?)?)?)?$`, flag)

recursive_rm_flag(flag) if regex.match(`^-[A-Za-z]*[rR][A-Za-z]*$`, flag)

rm_target(path) if path in {"*", ".", "..", "./*", "../*"}

rm_target(path) if system_path(path)

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

destructive_command(argv) if regex.match(`^(mkfs(\..+)?|mke2fs|mkswap|mkdosfs|mkntfs)$`, argv[0])

destructive_command(argv) if {
	argv[0] in {"systemctl", "loginctl"}
	some arg in argv
	arg in {"poweroff", "reboot", "halt", "kexec", "rescue", "emergency", "suspend", "hibernate"}
}

destructive_command(argv) if {
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

destructive_command(argv) if {
	argv[0] == "dd"
	some arg in argv
	startswith(arg, "of=/dev/")
}

destructive_command(argv) if argv[0] in {"shred", "wipefs", "shutdown", "reboot", "halt", "poweroff"}

destructive_command(argv) if {
	argv[0] in {"chmod", "chown", "chgrp"}
	some flag in argv
	regex.match(`^(--recursive|-[A-Za-z]*R[A-Za-z]*)$`, flag)
	some path in argv
	system_path(path)
}

destructive_command(argv) if {
	argv[0] == "find"
	"-delete" in argv
	some path in argv
	system_path(path)
}

# The fork bomb `:(){ :|:& };:` defines a function named ":" (the shell reader gives a
# definition as ["function", name]).
destructive_command(argv) if argv == ["function", ":"]

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

destructive_opaque(o) if destructive_command(array.concat(o.argv, ["/"]))

destructive_opaque(o) if {
	o.why == "computed_program"
	destructive_command(array.concat(["rm"], array.slice(o.argv, 1, count(o.argv))))
}

# A function that calls itself: the fork bomb, whatever its name (`b(){ b|b& };b`).
destructive_opaque(o) if o.why == "recursive_function"

# Output redirected into a disk, the kernel's memory or a system directory's files
# (`cat /dev/zero > /dev/sda`, `> /etc/passwd`, `> /proc/sysrq-trigger`).
destructive_write(path) if regex.match(`^/dev/(sd|hd|vd|xvd|nvme|mmcblk|dm-|md|loop|nbd|sr|mapper/|disk/|mem$|kmem$|port$)`, normal_path(path))

destructive_write(path) if regex.match(`^/(etc|boot|bin|sbin|lib|lib64|usr|sys|proc/sys|proc/sysrq-trigger)(/|$)`, normal_path(path))

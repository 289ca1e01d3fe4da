"""What the shell reader knows of programs beyond their names: which of their options run
another program, which change what later lines do, which files they write over, and which
variables steer a shell or a program.

The reader (shell.py) reads a line's words; these tables say when those words leave it
unable to name everything the line will run or change (an `opaque` reason), and which files
a command writes besides its redirections (`writes`), so that `truncate -s0 .env` and
`sed -i d /etc/passwd` are judged as writes to those files, as `> .env` is.

Each table is a sample of a class, kept where the class's rule is: a program missing from
a table is judged by its name and operands alone, as before. What a table cannot tell
(`git` reads `.git/config`, `make` a Makefile) is documented in docs/shell.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Variables that change what a later line, or the program they prefix, runs or reads:
# the shell's hooks and prompts (expanded, so run, at every prompt), its startup files,
# word splitting and program lookup, the dynamic loader, and programs' own hooks.
BEHAVIOUR_VARIABLES = frozenset({
    "PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS3", "PS4", "BASH_ENV", "ENV", "IFS", "PATH",
    "CDPATH", "GLOBIGNORE", "SHELLOPTS", "BASHOPTS", "HISTFILE", "HISTCONTROL",
    "HISTIGNORE", "INPUTRC", "BASH_XTRACEFD", "EXECIGNORE", "FIGNORE",
    "BASH_LOADABLES_PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH",
    "PAGER", "MANPAGER", "GIT_PAGER", "EDITOR", "VISUAL", "GIT_EDITOR", "LESSOPEN",
    "LESSCLOSE", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS",
    "SSH_ASKPASS", "SUDO_ASKPASS", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR", "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_COUNT", "RSYNC_RSH",
    "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PERL5LIB", "PERL5OPT", "PERLLIB",
    "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "BROWSER", "TAR_OPTIONS",
    "ZDOTDIR", "XDG_CONFIG_HOME", "HOME",
})
_BEHAVIOUR_PREFIXES = ("BASH_FUNC_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "LD_")

# Variables a session starts with and no line of it set: read as themselves (`$HOME`), the
# policy judging the name (a `$`-path is a system path to rm). Any other variable a line
# did not set itself is a value only known when it runs.
ENVIRONMENT = frozenset({
    "HOME", "USER", "LOGNAME", "PWD", "OLDPWD", "SHELL", "TERM", "LANG", "LC_ALL",
    "HOSTNAME", "HOSTTYPE", "PATH", "UID", "EUID", "PPID", "RANDOM", "SECONDS", "LINENO",
    "BASHPID", "BASH_VERSION", "?", "$", "!", "#", "-",
})

# Programs whose operands are data or judged as they are (echo's words, test's
# expressions, cd's folder, which the reader follows computed): an operand computed at
# run time leaves what they run known.
DATA_OPERANDS = frozenset({
    "echo", "printf", "test", "[", "[[", "true", "false", ":", "cd", "pushd", "popd",
    "exit", "return", "shift", "wait", "sleep", "export", "local", "declare", "typeset",
    "readonly", "let", "read", "function",
})

# Absolute folders whose programs are the host's installed ones: a program named by a
# path elsewhere (`./zap`, `/tmp/x`, `~/bin/x`) is a file the reader cannot say is which.
_INSTALLED = re.compile(r"/(?:usr/(?:local/)?)?s?bin/[^/]+|/(?:usr|opt|snap|nix/store)/.+")


def installed_path(program: str) -> bool:
    """Whether `program`, a word with a `/`, names a program installed on the host."""
    return _INSTALLED.fullmatch(program) is not None and "/../" not in program


def behaviour_variable(name: str) -> bool:
    return name in BEHAVIOUR_VARIABLES or name.startswith(_BEHAVIOUR_PREFIXES)


# -- options that run another program -----------------------------------------------------
# Matched on the program's operands joined by spaces (`-o ProxyCommand=x` is two words).
_RUNS = {
    "tar": r"--(?:checkpoint-action=exec|to-command|use-compress-program|info-script|"
           r"new-volume-script|rsh-command|rmt-command)|(?:^| )-[A-Za-z]*[IF]|^[a-zA-Z]*[IF]",
    "rsync": r"--(?:rsh|rsync-path)|(?:^| )-[A-Za-z]*e",
    "git": r"(?:^| )(?:-c|--config-env)(?: |=|$)|--(?:upload-pack|receive-pack|exec)\b|"
           r"(?:^| )(?:difftool|mergetool|filter-branch|bisect run|submodule foreach)\b|"
           r"(?:^| )config\b.*(?i:\b(?:" + r"|".join((
               r"core\.(?:pager|editor|sshcommand|fsmonitor|hookspath|askpass)",
               r"alias\.", r"credential\.", r"diff\..*(?:command|textconv)",
               r"diff\.external", r"merge\..*driver", r"filter\.", r"gpg\..*program",
               r"sequence\.editor", r"pager\.", r"include(?:if)?\.", r"uploadpack\.",
               r"web\.browser")) + r"))",
    "ssh": r"(?i:-o ?(?:proxycommand|localcommand|permitlocalcommand|knownhostscommand|"
           r"match))|(?:^| )-F",
    "scp": r"(?:^| )-S|(?i:-o ?(?:proxycommand|localcommand|knownhostscommand))|(?:^| )-F",
    "sftp": r"(?:^| )-[SD]|(?i:-o ?(?:proxycommand|localcommand|knownhostscommand))|(?:^| )-F",
    "zip": r"(?:^| )-TT|--unzip-command",
    "man": r"(?:^| )-[PH]|--(?:pager|html)",
    "sort": r"--compress-program",
    "split": r"--filter",
    "install": r"--strip-program",
    "vi": r"(?:^| )(?:-[cS]|--cmd|\+(?![0-9]*(?: |$)))",
    "nc": r"(?:^| )-[A-Za-z]*[ec]",
    "ncat": r"--(?:exec|sh-exec|lua-exec)|(?:^| )-[ec]",
    "socat": r"(?i:exec|system):",
    "gdb": r"(?:^| )-(?:ex|x|iex|ix)\b|--(?:eval-command|command)",
    "nmap": r"--script",
    "tcpdump": r"(?:^| )-z",
    "wget": r"--use-askpass",
    "less": r"(?:^| )\+!",
}
_RUNS.update(dict.fromkeys(("vim", "nvim", "ex", "view", "rvim", "gvim"), _RUNS["vi"]))
_RUNS.update(dict.fromkeys(("netcat", "nc.openbsd", "nc.traditional"), _RUNS["nc"]))
_RUNS_COMPILED = {name: re.compile(pattern) for name, pattern in _RUNS.items()}



# GNU sed's `e` command (at a command's place, after an address) and the `e` flag of `s`.
_SED_RUNS = re.compile(r"(?:^|[;\n{}])\s*(?:[0-9$]+|/[^/]*/)?(?:,(?:[0-9$]+|/[^/]*/))?\s*e"
                       r"(?:\s|;|$)|s(.)(?:(?!\1).)*\1(?:(?!\1).)*\1[a-zA-Z0-9]*e")


def runs_program(argv: list[str]) -> bool:
    """Whether one of `argv`'s options makes it run a program its words do not name
    (`tar --to-command=...`, `git -c core.pager=...`, `rsync -e ...`, GNU sed's `e`)."""
    if argv[0] == "sed":
        return any(_SED_RUNS.search(a) for a in argv[1:] if a[:1] != "-")
    pattern = _RUNS_COMPILED.get(argv[0])
    return pattern is not None and pattern.search(" ".join(argv[1:])) is not None


# -- lines that change what later lines do -----------------------------------------------
_SAFE_SET = frozenset({"-e", "+e", "-u", "+u", "-x", "+x", "-v", "+v", "-o", "+o", "pipefail",
                       "errexit", "nounset", "xtrace", "-eu", "-ex", "-eux", "-euo", "-eo"})
_BIND_LISTS = frozenset({"-p", "-P", "-v", "-V", "-s", "-S", "-l"})


def changes_state(argv: list[str]) -> bool:
    """Whether `argv` changes what later lines run or how they are read: a hook (`trap`),
    an alias, a function (`["function", name]`, as the reader gives a definition), history
    re-run (`fc`, `history -s`), the shell's options or key bindings, builtins loaded, a
    redirection of the shell itself (`exec >f`), a schedule, or a steering variable
    exported."""
    judge = _STATE_CHANGERS.get(argv[0])
    return judge is not None and judge(argv[1:])


def _sets_options(operands: list[str]) -> bool:
    """`set` with an option other than the error and trace ones (`set -f`, `set -o vi`)."""
    named = "-o" in operands or "+o" in operands  # `set -o NAME`: the names count too
    return any(o not in _SAFE_SET for o in operands if named or o[:1] in "-+")


_STATE_CHANGERS: dict[str, Callable[[list[str]], bool]] = {
    "trap": lambda ops: bool(ops) and ops[0] not in ("-l", "-p"),
    "fc": lambda ops: ops[:1] != ["-l"],
    "alias": lambda ops: any("=" in o for o in ops),
    "function": lambda _: True,
    "at": lambda _: True,
    "batch": lambda _: True,
    "crontab": lambda ops: ops != ["-l"],
    "enable": lambda ops: bool(ops) and ops[0] not in ("-p", "-a"),
    "bind": lambda ops: not ops or not all(o in _BIND_LISTS for o in ops),
    "complete": lambda ops: any(o[:1] == "-" and ("C" in o or "F" in o) for o in ops),
    "history": lambda ops: any(o[:2] in ("-s", "-r", "-n", "-a", "-w") for o in ops),
    "set": _sets_options,
    "shopt": lambda ops: any(o in ("-s", "-u") for o in ops),
    "exec": lambda ops: all(o[:1] == "-" for o in ops),  # no program: the shell's streams
    "hash": lambda ops: "-p" in ops,
    **dict.fromkeys(("export", "declare", "typeset", "local", "readonly"), lambda ops: any(
        o in ("-f", "-fx", "-xf") for o in ops) or any(
        behaviour_variable(o.partition("=")[0]) for o in ops if o[:1] != "-")),
}


def later_scripts(argv: list[str]) -> list[str]:
    """The command lines a state change runs later, to be read now: a trap's action, an
    alias's value, PROMPT_COMMAND's value (alone or exported)."""
    name, operands = argv[0], [o for o in argv[1:] if o != "--"]
    if name == "trap":
        return operands[:1] if operands and operands[0][:1] != "-" else []
    if name == "alias":
        return [o.partition("=")[2] for o in operands if "=" in o]
    return [w.partition("=")[2] for w in argv if w.startswith(("PROMPT_COMMAND=",
                                                             "PROMPT_COMMAND+="))]


# -- files a command writes over --------------------------------------------------------
_DESTINATION = frozenset({"cp", "mv", "install", "ln", "rsync"})
_OPERANDS_WRITTEN = frozenset({"truncate", "tee", "shred", "gzip", "bzip2", "xz", "lzma",
                               "zstd", "lz4", "chattr"})
# Short options that take a value, per program (their value is no file written).
_VALUED = {"truncate": "rs", "tee": "", "shred": "ns", "gzip": "S", "bzip2": "", "xz": "STM",
           "lzma": "STM", "zstd": "oDT", "lz4": "B", "chattr": "pv", "cp": "tS", "mv": "tS",
           "install": "gmotS", "ln": "tS", "rsync": "efBT", "sed": "efl"}


def writes_of(argv: list[str]) -> list[str]:
    """The files `argv` writes over besides its redirections: a copy's, move's, install's
    or link's destination (`install /dev/null f` empties f), `truncate`'s, `tee`'s,
    `shred`'s and the compressors' operands (gzip replaces f by f.gz), `dd`'s `of=`, `sed
    -i`'s files, `sort -o`'s file."""
    name = argv[0]
    if name == "dd":
        return [a[3:] for a in argv[1:] if a.startswith("of=")]
    if name == "sort":
        return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-o"] + [
            a[2:] for a in argv if a.startswith("-o") and len(a) > 2] + [
            a[9:] for a in argv if a.startswith("--output=")]
    if name not in _DESTINATION and name not in _OPERANDS_WRITTEN and name != "sed":
        return []
    operands, options = _split_operands(argv, _VALUED.get(name, ""))
    if name == "sed":
        if not any(o == "-i" or (o[:2] == "-i" and o[1:2] != "-") or o.startswith("--in-place")
                   or (o[:1] == "-" and o[1:2] != "-" and "i" in o) for o in options):
            return []
        scripted = any(o in ("-e", "-f") or o.startswith(("--expression", "--file"))
                       for o in options)
        return operands if scripted else operands[1:]
    if name in _OPERANDS_WRITTEN:
        return operands
    target = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-t",
                   "--target-directory")), None) or next(
        (a[19:] for a in argv if a.startswith("--target-directory=")), None)
    if target is not None:
        return [target]
    return operands[-1:] if len(operands) > 1 else []


def _split_operands(argv: list[str], valued: str) -> tuple[list[str], list[str]]:
    """`argv`'s operands and its options (an option's separate value in neither)."""
    operands: list[str] = []
    options: list[str] = []
    i, ended = 1, False
    while i < len(argv):
        arg = argv[i]
        i += 1
        if ended or arg[:1] != "-" or arg == "-":
            operands.append(arg)
        elif arg == "--":
            ended = True
        else:
            options.append(arg)
            if arg[1:2] != "-" and arg[-1] in valued and len(arg) == 2:
                if i < len(argv):
                    options.append(argv[i])
                i += 1
    return operands, options


# -- input from the client written as files -----------------------------------------------
_UNPACKERS = re.compile(r"(?:^| )-[A-Za-z]*x[A-Za-z]*(?: |$)|^[A-Za-z]*x[A-Za-z]*(?: |$)|"
                        r"--extract|--get")


def unpacks_input(argv: list[str]) -> bool:
    """Whether `argv` writes files named inside what arrives on its stdin: `tar -x` without
    an archive file (or `-f -`), `cpio -i`, `unzip /dev/stdin`, `base64 -d`/`xxd -r` into
    a redirection is a write of known path instead (judged by `writes`)."""
    name, args = argv[0], argv[1:]
    joined = " ".join(args)
    if name in ("tar", "bsdtar", "gtar"):
        if _UNPACKERS.search(joined) is None:
            return False
        archive = next((args[i + 1] for i, a in enumerate(args[:-1])
                        if (a[:1] == "-" or i == 0) and a[1:2] != "-" and a.endswith("f")),
                       None)
        archive = archive or next((a[7:] for a in args if a.startswith("--file=")), None)
        return archive in (None, "-", "/dev/stdin")
    if name == "cpio":
        return any(a in ("-i", "--extract") or (a[:1] == "-" and a[1:2] != "-" and "i" in a)
                   for a in args)
    if name in ("unzip", "7z", "busybox"):
        return "/dev/stdin" in args or "-" in args
    return False

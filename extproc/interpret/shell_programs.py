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
from typing import Literal

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


def why_unread(argv: list[str], stdin: bool) -> Literal[
        "changes_state", "runs_program", "unread_input", "script_file",
        "stdin_operands"] | None:
    """What in `argv`'s program and options leaves it unread, as the reader's reasons say
    (`changes_state`, `runs_program`, `unread_input`, `script_file`, `stdin_operands`), or
    None. Most programs are in no table: they are let through at one set lookup."""
    name = argv[0]
    if name not in _CONCERNED and _LOADER.fullmatch(name) is None:
        return None
    if changes_state(argv):
        return "changes_state"
    if runs_program(argv):
        return "runs_program"
    if unpacks_input(argv, stdin):
        return "unread_input"
    if script_file(argv):
        return "script_file"
    if names_at_run_time(argv):
        return "stdin_operands"
    return None


def behaviour_variable(name: str) -> bool:
    return name in BEHAVIOUR_VARIABLES or name.startswith(_BEHAVIOUR_PREFIXES)


_PROMPTS = frozenset({"PS0", "PS1", "PS2", "PS3", "PS4"})


def steering(assignment: str) -> bool:
    """Whether `NAME=value` sets a variable that changes what runs: any steering variable,
    but a prompt only when its value expands something (`PS1='$(cmd)> '`; `PS1='pod> '`
    is text)."""
    name, _, value = assignment.partition("=")
    name = name.rstrip("+")
    if name in _PROMPTS:
        return "$" in value or "`" in value
    return behaviour_variable(name)


# -- options that run another program -----------------------------------------------------
# Long options that run a program, per program: GNU getopt_long takes any unambiguous
# prefix (`--checkpoint-a=exec=...`, `--use-compress=...`), so a prefix of one of these
# counts too, unless it is itself a whole option of the program (`_WHOLE`: tar's
# `--checkpoint=N`).
_LONG = {
    "tar": ("checkpoint-action", "to-command", "use-compress-program", "info-script",
            "new-volume-script", "rsh-command", "rmt-command"),
    "rsync": ("rsh", "rsync-path"),
    "git": ("upload-pack", "receive-pack", "exec", "config-env", "open-files-in-pager",
            "extcmd", "tool"),
    "zip": ("unzip-command",),
    "man": ("pager", "html"),
    "sort": ("compress-program",),
    "split": ("filter",),
    "install": ("strip-program",),
    "ncat": ("exec", "sh-exec", "lua-exec"),
    "gdb": ("eval-command", "command", "init-eval-command", "init-command"),
    "nmap": ("script",),
    "wget": ("use-askpass",),
    "script": ("command",),
    "mapfile": (), "readarray": (),
    "vi": ("cmd",),
}
_WHOLE = {"tar": frozenset({"checkpoint"}), "git": frozenset({"exec-path"})}
# Matched on the program's operands joined by spaces (`-o ProxyCommand=x` is two words);
# a short option may close a cluster of others (`-4oProxyCommand=x`).
_SSH_COMMANDS = r"(?i:-[A-Za-z0-9]*o ?(?:proxycommand|localcommand|permitlocalcommand|" \
                r"knownhostscommand|match|proxyusefdpass))|(?:^| )-[A-Za-z0-9]*F"
_RUNS = {
    "tar": r"(?:^| )-[A-Za-z]*[IF]|^[a-zA-Z]*[IF]",
    "rsync": r"(?:^| )-[A-Za-z]*e",
    "git": r"(?:^| )-c(?: |=|$)|"
           r"(?:^| )(?:difftool|mergetool|filter-branch|bisect run|submodule foreach)\b|"
           r"(?:^| )(?:clone|fetch|pull|ls-remote|archive)\b.*(?:^| )-u|"
           r"(?:^| )rebase\b.*(?:^| )-[A-Za-z]*x|(?:^| )grep\b.*(?:^| )-[A-Za-z]*O|"
           r"(?:^| )config\b.*(?i:\b(?:" + r"|".join((
               r"core\.(?:pager|editor|sshcommand|fsmonitor|hookspath|askpass|gitproxy)",
               r"alias\.", r"credential\.", r"diff\..*(?:command|textconv)",
               r"diff\.external", r"merge\..*driver", r"filter\.", r"gpg\..*program",
               r"sequence\.editor", r"pager\.", r"include(?:if)?\.", r"uploadpack\.",
               r"remote\..*\.(?:uploadpack|receivepack|proxy|vcs)", r"protocol\.",
               r"web\.browser")) + r"))",
    "ssh": _SSH_COMMANDS,
    "scp": r"(?:^| )-[A-Za-z0-9]*S|" + _SSH_COMMANDS,
    "sftp": r"(?:^| )-[A-Za-z0-9]*[SD]|" + _SSH_COMMANDS,
    "zip": r"(?:^| )-TT",
    "man": r"(?:^| )-[A-Za-z]*[PH]",
    "vi": r"(?:^| )(?:-[A-Za-z]*[cS]|\+(?![0-9]*(?: |$)))",
    "nc": r"(?:^| )-[A-Za-z]*[ec]",
    "ncat": r"(?:^| )-[A-Za-z]*[ec]",
    "socat": r"(?i:exec|system):",
    "gdb": r"(?:^| )-(?:ex|x|iex|ix|batch)\b",
    "tcpdump": r"(?:^| )-[A-Za-z]*z",
    "less": r"(?:^| )\+!",
    "strace": r"(?:^| )-o ?[|!]|--output=[|!]",
    "ltrace": r"(?:^| )-o ?[|!]|--output=[|!]",
    "mapfile": r"(?:^| )-[A-Za-z]*C",
    "readarray": r"(?:^| )-[A-Za-z]*C",
    "compgen": r"(?:^| )-[A-Za-z]*[CF]",
    "ssh-agent": r"(?:^| )[^- ]",  # `ssh-agent CMD`: it runs CMD
    "run-parts": r".",
}
_RUNS.update(dict.fromkeys(("vim", "nvim", "ex", "view", "rvim", "gvim"), _RUNS["vi"]))
_RUNS.update(dict.fromkeys(("netcat", "nc.openbsd", "nc.traditional"), _RUNS["nc"]))
for _alias, _of in (("vim", "vi"), ("nvim", "vi"), ("ex", "vi"), ("view", "vi"),
                    ("gtar", "tar"), ("bsdtar", "tar")):
    _LONG.setdefault(_alias, _LONG[_of])
    _RUNS.setdefault(_alias, _RUNS[_of])
_RUNS_COMPILED = {name: re.compile(pattern) for name, pattern in _RUNS.items()}
# The dynamic loader run as a program runs the program in its operands.
_LOADER = re.compile(r"ld(?:-linux.*|-musl.*)?\.so(?:\.[0-9]+)*|ld-linux.*")

# GNU sed: where a command starts (after an address: a line, `$`, `first~step`, a regex
# with escapes, a range, `!`); the `e` command there, and the `e` flag of `s` (delimiters
# escaped too).
_SED_ADDRESS = r"(?:[0-9$]+(?:~[0-9]+)?|/(?:\\.|[^/\\])*/|\\(?P<c>.)(?:\\.|(?!(?P=c)).)*(?P=c))?"
_SED_COMMAND = (r"(?:^|[;\n{}])\s*" + _SED_ADDRESS
                + r"(?:,\s*(?:[0-9$+~]+|/(?:\\.|[^/\\])*/))?\s*!?\s*")
_SED_S = r"s(?P<d>.)(?:\\.|(?!(?P=d)).)*(?P=d)(?:\\.|(?!(?P=d)).)*(?P=d)"
_SED_RUNS = re.compile(_SED_COMMAND + r"e(?:\s|;|$)|" + _SED_S + r"[a-zA-Z0-9 ]*e")


_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "yash"})


def script_file(argv: list[str]) -> bool:
    """Whether `argv` runs a script from a file an option names: `sed -f F`, `bash
    --rcfile F -ic ...` (an interactive shell's startup file)."""
    if argv[0] in _SHELLS:
        return any(a.startswith(("--rcfile", "--init-file")) for a in argv[1:])
    return argv[0] == "sed" and any(
        a.startswith("--file") or (a[:1] == "-" and a[1:2] != "-" and "f" in a[1:])
        for a in argv[1:])


def runs_program(argv: list[str]) -> bool:
    """Whether one of `argv`'s options makes it run a program its words do not name
    (`tar --to-command=...`, `git -c core.pager=...`, `rsync -e ...`, GNU sed's `e`),
    long options abbreviated as getopt allows."""
    name = argv[0]
    if name == "sed":
        return any(_SED_RUNS.search(script) for script in sed_scripts(argv))
    if _LOADER.fullmatch(name):
        return True
    long = _LONG.get(name, ())
    whole = _WHOLE.get(name, frozenset())
    for arg in argv[1:]:
        if arg[:2] == "--" and len(arg) > 3:
            given = arg[2:].partition("=")[0]
            if given not in whole and any(o.startswith(given) for o in long):
                return True
    pattern = _RUNS_COMPILED.get(name)
    return pattern is not None and pattern.search(" ".join(argv[1:])) is not None


def sed_scripts(argv: list[str]) -> list[str]:
    """The scripts a sed command runs: each `-e`'s (`-e S`, `-eS`, `--expression[=]S`, and
    their abbreviations), else its first operand."""
    scripts: list[str] = []
    operands: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg[:2] == "--" and len(arg) > 2:
            given, eq, value = arg[2:].partition("=")
            if "expression".startswith(given) and len(given) > 1:
                scripts.append(value if eq else next(args, ""))
        elif arg[:1] == "-" and len(arg) > 1:
            at = arg.find("e", 1)
            if at > 0 and all(c in "nrsuzE" for c in arg[1:at]):
                scripts.append(arg[at + 1:] or next(args, ""))
            elif arg[-1] in "fl" and len(arg) == 2:
                next(args, "")
        else:
            operands.append(arg)
    return scripts or operands[:1]


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
        o[:1] == "-" and ("f" in o or "i" in o or "n" in o) for o in ops) or any(
        steering(o) if "=" in o else behaviour_variable(o) for o in ops if o[:1] != "-")),
    # Builtins that set the variables they name: `read PATH`, `printf -v PROMPT_COMMAND`.
    **dict.fromkeys(("read", "mapfile", "readarray", "getopts", "printf"), lambda ops: any(
        behaviour_variable(o[2:] if o[:2] == "-v" else o) for o in ops)),
    # Wrappers that set a variable for what they run: `env PATH=. x`, `sudo LD_PRELOAD=...`.
    **dict.fromkeys(("env", "sudo", "doas"), lambda ops: any(
        steering(o) for o in ops if "=" in o and o[:1] != "-")),
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
    -i`'s files and its `w` commands', an output option's file (`sort -o`, `shuf -o`,
    `iconv -o`, `curl -o`, `wget -O`, `find -fprint`), `uniq IN OUT`'s OUT, and the config
    file `git config` writes."""
    name = argv[0]
    if name == "dd":
        return [a[3:] for a in argv[1:] if a.startswith("of=")]
    output = _OUTPUT_OPTIONS.get(name)
    if output is not None:
        return _option_values(argv, *output)
    if name == "find":
        return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in _FIND_WRITES]
    if name == "uniq":
        operands = _split_operands(argv, "fsw")[0]
        return operands[1:2]
    if name == "git":
        return _git_config_file(argv)
    if name not in _DESTINATION and name not in _OPERANDS_WRITTEN and name != "sed":
        return []
    operands, options = _split_operands(argv, _VALUED.get(name, ""))
    if name == "sed":
        written = _sed_files(argv, "wW")
        if not any(o == "-i" or (o[:2] == "-i" and o[1:2] != "-") or o.startswith("--in-place")
                   or (o[:1] == "-" and o[1:2] != "-" and "i" in o) for o in options):
            return written
        scripted = any(o in ("-e", "-f") or o.startswith(("--expression", "--file"))
                       for o in options)
        return written + (operands if scripted else operands[1:])
    if name in _OPERANDS_WRITTEN:
        return operands
    target = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-t",
                   "--target-directory")), None) or next(
        (a[19:] for a in argv if a.startswith("--target-directory=")), None)
    if target is not None:
        return [target]
    return operands[-1:] if len(operands) > 1 else []


def appends(argv: list[str]) -> bool:
    """Whether what `argv` writes (writes_of) it only adds to: `tee -a`."""
    return argv[0] == "tee" and any(
        a == "--append" or (a[:1] == "-" and a[1:2] != "-" and "a" in a) for a in argv[1:]
        if a != "--")


# Programs whose output goes to the file an option names: (the short option's letter, the
# long option's name).
_OUTPUT_OPTIONS = {"sort": ("o", "output"), "shuf": ("o", "output"), "iconv": ("o", "output"),
                   "curl": ("o", "output"), "wget": ("O", "output-document")}
_FIND_WRITES = frozenset({"-fprint", "-fprint0", "-fprintf", "-fls"})
# sed's commands that name a file, the rest of their line (a blank before it optional, an
# address before them: `1w.ssh/x`, `$r.env`): `r` and `R` read it, `w` and `W` and the
# `w` flag of `s` write it.
_SED_FILES = re.compile(_SED_COMMAND + r"(?P<command>[rRwW])\s*(?P<file>[^\n]+)|"
                        + _SED_S + r"[gpiImMeE0-9]*w\s*(?P<written>[^\n]+)")


def _sed_files(argv: list[str], commands: str) -> list[str]:
    """The files the sed commands `commands` (of `rRwW`; `s///w` is a `w`) name in
    `argv`'s scripts."""
    return [m.group("file") or m.group("written") for script in sed_scripts(argv)
            for m in _SED_FILES.finditer(script) if (m.group("command") or "w") in commands]


def reads_of(argv: list[str]) -> list[str]:
    """The files `argv` reads that are none of its operands, named inside its script:
    sed's `r` and `R` files (`sed '1r.env' x` prints .env after line 1)."""
    return _sed_files(argv, "rR") if argv[0] == "sed" else []


def _option_values(argv: list[str], short: str, long: str) -> list[str]:
    """The values of `-X V`, `-XV`, a cluster ending in X (`-so V`), `--long[=]V`."""
    found: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg[:2] == "--" and len(arg) > 2:
            given, eq, value = arg[2:].partition("=")
            if len(given) > 1 and long.startswith(given):
                found.append(value if eq else next(args, ""))
        elif arg[:1] == "-" and short and short in arg[1:]:
            rest = arg[arg.index(short, 1) + 1:]
            found.append(rest or next(args, ""))
    return found


def _git_config_file(argv: list[str]) -> list[str]:
    """The file `git config` changes: ~/.gitconfig (`--global`), /etc/gitconfig
    (`--system`), `--file F`, else the repository's .git/config; none for a read."""
    if "config" not in argv:
        return []
    args = argv[argv.index("config") + 1:]
    operands = [a for a in args if a[:1] != "-"]
    changes = len(operands) > 1 or any(a.startswith(("--unset", "--add", "--replace",
                                                     "--rename", "--remove", "--edit", "-e"))
                                       for a in args)
    if not changes or any(a in ("--get", "--get-all", "--list", "-l", "--get-regexp")
                          for a in args):
        return []
    if "--global" in args:
        return ["~/.gitconfig"]
    if "--system" in args:
        return ["/etc/gitconfig"]
    files = _option_values(["git", *args], "f", "file")
    return files[:1] or [".git/config"]


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


# -- files named at run time ---------------------------------------------------------------
# Programs that read files whose names they take when they run, from a list an option
# names (its short letter, its long name; `-` for stdin): `tar -T l`, `rsync
# --files-from=l`, `sort --files0-from=l`, `zstd --filelist l`.
_NAMES_FROM = {"tar": ("T", "files-from"), "bsdtar": ("T", "files-from"),
               "gtar": ("T", "files-from"), "rsync": ("", "files-from"),
               "sort": ("", "files0-from"), "zstd": ("", "filelist"), "xz": ("", "files0")}


def names_at_run_time(argv: list[str]) -> bool:
    """Whether `argv` reads files named only when it runs: in a list an option names
    (_NAMES_FROM), or on its stdin (`cpio -o` and `-p`, `zip -@`): its operands are given
    at run time, as `xargs CMD`'s are."""
    name, args = argv[0], argv[1:]
    if name == "cpio":
        return any(a in ("--create", "--pass-through") or (
            a[:1] == "-" and a[1:2] != "-" and ("o" in a or "p" in a)) for a in args)
    if name == "zip":
        return any(a == "--names-stdin" or (a[:1] == "-" and a[1:2] != "-" and "@" in a)
                   for a in args)
    listed = _NAMES_FROM.get(name)
    return listed is not None and bool(_option_values(argv, *listed))


# -- input from the client written as files -----------------------------------------------
_UNPACKERS = re.compile(r"(?:^| )-[A-Za-z]*x[A-Za-z]*(?: |$)|^[A-Za-z]*x[A-Za-z]*(?: |$)|"
                        r"--extract|--get")


def unpacks_input(argv: list[str], stdin: bool) -> bool:
    """Whether `argv` writes files named inside input tollgate does not read: an archive
    extracted from a file on the host (`tar -xf a.tar`, `unzip a.zip`, `patch < d`), or
    from its stdin when that is unread (`stdin`: a pipe, the client's): `tar -x`, `cpio
    -i`. (`base64 -d > f` writes a path read: judged by `writes`.)"""
    name, args = argv[0], argv[1:]
    joined = " ".join(args)
    if name in ("tar", "bsdtar", "gtar"):
        if _UNPACKERS.search(joined) is None:
            return False
        archive = next((args[i + 1] for i, a in enumerate(args[:-1])
                        if (a[:1] == "-" or i == 0) and a[1:2] != "-" and a.endswith("f")),
                       None)
        archive = archive or next((a[7:] for a in args if a.startswith("--file=")), None)
        return archive not in (None, "-", "/dev/stdin") or stdin
    if name == "cpio":
        return any(a in ("-i", "--extract") or (a[:1] == "-" and a[1:2] != "-" and "i" in a)
                   for a in args)
    if name in ("unzip", "patch"):
        return True
    if name in ("7z", "7za", "unrar"):
        return args[:1] in (["x"], ["e"])
    return False


# Every program a table above concerns (why_unread's first look).
_CONCERNED = frozenset({*_STATE_CHANGERS, *_RUNS, *_LONG, *_SHELLS, *_NAMES_FROM, "sed", "tar",
                        "bsdtar", "gtar", "cpio", "unzip", "patch", "7z", "7za", "unrar"})

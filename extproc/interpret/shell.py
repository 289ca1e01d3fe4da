"""Which programs a shell command line would run: a reader for tool-call arguments.

A policy refuses a model's tool call by what it would execute (`rm` with `-rf` on `/`),
not by a regex over the text, so the text is split as POSIX sh splits it and every
command is returned as its argv. What hides a command from a plain split is unwrapped:

- `;`, `&&`, `||`, `|`, `&`, newlines, `(`, `)` separate commands; reserved words that
  open a compound command (`if`, `then`, `do`, `{`, `!`, ...) are not part of argv;
- argv[0] is reduced to its basename (`/bin/rm` -> `rm`); quotes and escapes are removed
  as sh removes them (`r''m`, `\\rm`, `"rm"` -> `rm`; bash's `$'\\x72m'` -> `rm`);
- leading `VAR=value` assignments are skipped;
- wrappers (`sudo`, `doas`, `env`, `nohup`, `nice`, `timeout`, `time`, `exec`, `command`,
  `xargs`, `busybox`, `setsid`, `stdbuf`, `chroot`, `coproc`, `flock`, `pkexec`,
  `nsenter`, `unshare`, `ionice`, `taskset`, `caffeinate`, `strace`, `ltrace`,
  `systemd-run`, `setpriv`, `runuser -u`, `chrt`, `setarch`, `gosu`, `parallel`, `screen`,
  ...; subcommands `kubectl|oc exec ... --`, `docker|podman|nerdctl exec`, tmux's
  `new-session`, `run-shell`, ... and `send-keys`, screen's `-X stuff`, whose keys are
  read as the line they type): the wrapper's argv is returned and so is the command it
  runs (both execute; `env -S '...'` runs the command line it splits);
- scripts passed as strings are read too: `sh|bash|zsh|dash|ksh|ash|mksh|fish -c '...'`,
  `su|runuser|script|flock|sg -c '...'`, `eval ...`, `ssh host ...`, `watch ...`,
  `find ... -exec cmd ;`;
- command substitutions `$(...)` and backticks, unquoted or inside double quotes, and
  process substitutions `<(...)`, `>(...)` are read as commands (inside single quotes
  they are text, as in sh);
- bash's brace lists and `$IFS` split words (`{rm,-rf,/}`, `rm${IFS}-rf${IFS}/`);
- a function definition `f() { ...; }` (or `function f`) is returned as the command
  `["function", "f"]` followed by its body's commands (a fork bomb is visible as such);
- redirections and their targets are not argv; output redirections' targets are
  `writes` (`> /dev/sda`); a heredoc's body is read as commands (what `sh <<EOF` would run);
  a file read that the words do not name (an input redirection's that a variable of the
  text or a `cd` makes, sed's `r F`) is given as a command `< path CMD...`;
- `cd`, `pushd` and `popd` are followed (a nested script's end with it, eval's do not):
  a command whose path operands land elsewhere than they read, after a `cd` or through
  `..`, is returned again with them resolved (`cd /etc && rm -rf *` also gives `rm -rf
  /etc/*`; `rm -rf x/../..` gives `rm -rf ..`). The start is unknown (a login's home for an
  SSH exec): a path above it stays `..`, a folder only known when it runs stays computed
  (`cd "$D"; rm -rf x` gives `rm -rf $D/x`). Conditions are not weighed: `cd /x || rm y`
  judges `rm` in both folders.

What can only be known when it runs is not guessed: such a command is returned, and
marked `opaque` with why (OPAQUE_REASONS): a program that is a substitution, a variable
or a glob (`$(echo rm) -rf /`, `a=rm; $a -rf /`, `eval "$x"`, `/bin/r? -rf /`), a
script from a pipe, a redirection or a process substitution (`curl ... | sh`,
`source <(...)`, `cat q.sql | psql`),
another language's inline code (`python -c`, `perl -e`, `node -e`, `php -r`, awk calling
system(); the strings in the code are read as commands too), operands given at run time
(`xargs rm -rf`, `find -exec rm {} +`, `tar -T list`), scripts nested past depth 16, a
function that calls itself (the fork bomb, whatever its name); and what only the host's own state
decides (docs/shell.md): a script file (`sh f`, `python3 x.py`), a program by a path that
is not an installed one (`./zap`), a line that changes what later ones run (steering
variables, `trap`, `alias`, functions, `set -o vi`), an option that runs a program
(`tar --to-command`, shell_programs.py), an unpacker fed unread input, an operand computed
at run time (`$(...)`, a variable the text did not set literally), a glob that does not
match every name (one that does is given again as `*`: `rm -rf [!.]*` is `rm -rf *`), and
in a typed line history expansion. Words keep what sh will still expand in them (Word)
until the reading is returned, as plain strings. A shell with no script and no piped
stdin is a session (`kubectl exec -it pod -- sh`), not opaque. Of a chain of wrappers, at
most 16 argvs are returned, and always the innermost command. It errs on the side of
reporting: a commented-out or unreachable command is still a command here. Text that sh
itself could not parse (an unclosed quote or substitution) is split on whitespace
instead. Not followed: variables set by an earlier text, aliases and functions of the
host, CDPATH, `env -C`/`git -C` folders.

The lexer is a compiled regex rather than `shlex`: shlex loses the quoting a `$(...)`
stood in (so `echo '$(rm -rf /)'` would read as rm), its comment handling swallows the
newline ending the comment (`ls # x` NL `rm -rf /` would read as one `ls`), and it cannot
tell `2>` from `2 >`. Reading a text whole, its words' expansions marked and every
command classified, costs about twice shlex's tokenising alone: ~1 µs a character (13 µs
for `ls -la /tmp`, where shlex.split takes 5; 7 µs before the marks, measured on the same
machine), an order of magnitude under one policy evaluation.

Nor is it a real grammar (tree-sitter-bash 0.25, measured on this reader's tests and the
bypass cases): its parse alone takes ~19 µs a command where this whole reading takes ~26,
a 64 KiB text 45 ms against 57, and the unwrapping (quotes, `$'...'`, wrappers, nested
scripts) would still be ours, walked node by node in Python; and it gives an ERROR tree
for what bash runs (`{rm,-rf,/}`, `a#b c`). It would cost more than it gains.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from extproc.interpret import shell_programs as programs

_MAX_DEPTH = 16  # nested scripts (`sh -c`, `$(...)`) read; deeper is opaque
_MAX_LAYERS = 16  # wrapper argvs returned per command (the innermost command always is)

_UNQUOTED = re.compile(
    r"""
      (?P<blank>[ \t\r\f\v]+|\\\n)
    | (?P<sep>\n|&&|\|\||;;&?|;&|\|&|[;&|()])
    | (?P<process>[<>]\()
    | (?P<redir>[0-9]*(?:<<<|<<-?|<>|<&|>&|>>|>\||<|>)|&>>?)
    | (?P<comment>\#[^\n]*)
    | '(?P<single>[^']*)'
    | \$'(?P<ansi>(?:[^'\\]|\\.)*)'
    | (?P<double>")
    | (?P<subst>\$\(|`)
    | (?P<var>\$(?:\{[^{}$`'\"\\]*\}|\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_]*|[0-9?#$!@*-]))
    | \\(?P<escaped>.)
    | (?P<plain>[^ \t\r\f\v\n'"\\;&|()<>`$\#]+|\$)
    """,
    re.X | re.S,
)
_DOUBLE = re.compile(
    r"""
      \\(?P<escaped>[$`"\\\n])
    | (?P<subst>\$\(|`)
    | (?P<var>\$(?:\{[^{}$`'\"\\]*\}|\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_]*|[0-9?#$!@*-]))
    | (?P<end>")
    | (?P<plain>[^"\\$`]+|\\|\$)
    """,
    re.X,
)
# `$((...))` of numbers and operators alone: arithmetic that runs nothing. Any name, `$`,
# backtick or subscript stays a substitution read as a script (bash evaluates a variable's
# value as an expression, and `a[$(cmd)]` in it runs cmd): opaque, as before.
_PURE_ARITHMETIC = re.compile(r"\([0-9\s+\-*/%<>=!&|^~?:(),]*\)")
# What can stand between the parentheses of $(...) without closing it.
_PARENS = re.compile(r"""[()]|'[^']*'|"(?:[^"\\]|\\.)*"|\\.""", re.S)
_ANSI_ESCAPE = re.compile(
    r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)", re.S
)
_ANSI_SIMPLE = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_RESERVED = frozenset({"!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done",
                       "while", "until"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "yash"})
# Interpreters and the options whose value is code to run (python* takes -c).
_INLINE = {
    "perl": ("-e", "-E"), "ruby": ("-e",), "node": ("-e", "-p", "--eval", "--print"),
    "nodejs": ("-e", "-p", "--eval", "--print"), "bun": ("-e", "--eval"), "php": ("-r",),
    "lua": ("-e",), "Rscript": ("-e",), "tclsh": (), "pwsh": ("-c", "--command"),
}
_PYTHON = re.compile(r"(?:python|pypy)[0-9.]*")
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
# What in an awk program runs a command, reads a program file or a file its words do not
# name: system(), getline, a pipe (`print ... | "sh"`: any lone `|` once regex literals are
# set aside), @include, ARGV (`ARGV[1] = ".e" "nv"` reads the file the program makes up).
_AWK_RUNS = re.compile(r"system\s*\(|getline|\|&|(?<!\|)\|(?!\|)|@include|@load|ARGV")
# An awk regex literal (`/a|b/`), where `|` is an alternative: not where `/` divides.
_AWK_REGEX = re.compile(r"(?:^|(?<=[\s(,!~&|{;]))/(?:\\.|[^/\\\n])*/")
# Database engines that run in the shell's own process, whose SQL reads host files or runs
# programs (sqlite3's readfile() and dot-commands, DuckDB's read_text()): code, as awk's.
_LOCAL_SQL = frozenset({"sqlite3", "duckdb"})
_LOCAL_SQL_FILES = re.compile(
    r"(?i)\b(?:readfile|edit|load_extension|read_(?:text|blob|csv|json|ndjson|parquet)\w*)"
    r"\s*\(|(?:^|[\s;])\.(?:read|import|load|shell|system|once|output)\b")
# Programs that run what arrives on their stdin as commands when it is a pipe or the
# client's: editors (`!cmd`), dc (`!`), debuggers.
_STDIN_SCRIPTED = frozenset({"ed", "red", "ex", "vi", "vim", "nvim", "view", "dc", "gdb",
                             "ftp", "sftp", "telnet"})
_SQL_CLIENTS = frozenset({"psql", "mysql", "mariadb", "sqlite3", "duckdb", "clickhouse-client",
                          "cockroach"})
_SQL_SOURCES = ("-c", "--command", "-e", "--execute", "-q", "--query", "-f", "--file")
_STDIN_FILES = ("/dev/stdin", "/dev/fd/", "/proc/self/fd/")
# The programs `_opaque_program` looks at even when their stdin is no pipe (python* too).
_MAYBE_OPAQUE = frozenset({"source", ".", *_INLINE, *_AWKS, *_LOCAL_SQL})
# A word whose value is only known when it runs: a substitution or a variable.
_DYNAMIC = re.compile(r"[$`]|\A[<>]\(")
# A string literal of another language's code (quotes of Python, Perl, Ruby, JS, PHP).
_LITERAL = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|`([^`]*)`""", re.S)
_LOOKS_LIKE_SHELL = re.compile(r"\A[ \t\r\n]*(?![)\]}])[!-~]|[;&|`\n]|\$\(")
# What bash splits a word on although it has no blank: `{rm,-rf,/}`, `rm${IFS}-rf${IFS}/`.
_BRACE_LIST = re.compile(r"\{([^{}\s]*,[^{}\s]*)\}")
_IFS = re.compile(r"\$\{IFS\}|\$IFS(?![A-Za-z0-9_])")


@dataclass(frozen=True, slots=True)
class _Wrapper:
    """A program that runs the command in its operands: how to find where that starts."""

    short_with_value: str = ""  # short options that take a value (`-u root`, `-uroot`)
    long_with_value: frozenset[str] = frozenset()  # long ones (`--user root`, `--user=root`)
    operands: int = 0  # operands before the command (`timeout 5`, `chroot /srv`, `ssh host`)
    script: bool = False  # the rest is joined into a script for sh (`eval`, `ssh`, `watch`)
    dashes: bool = False  # the command follows the first `--` when there is one (kubectl exec)


_WRAPPERS: dict[str, _Wrapper] = {
    "sudo": _Wrapper("ugCDhprtTU", frozenset({
        "user", "group", "close-from", "chdir", "host", "prompt", "role", "type",
        "command-timeout", "other-user"})),
    "doas": _Wrapper("uC"),
    "env": _Wrapper("uCS", frozenset({"unset", "chdir", "split-string"})),
    "nohup": _Wrapper(),
    "nice": _Wrapper("n", frozenset({"adjustment"})),
    "timeout": _Wrapper("sk", frozenset({"signal", "kill-after"}), operands=1),
    "time": _Wrapper("fo", frozenset({"format", "output"})),
    "exec": _Wrapper("a"),
    "command": _Wrapper(),
    "builtin": _Wrapper(),
    "xargs": _Wrapper("adEILnPs", frozenset({
        "arg-file", "delimiter", "eof", "replace", "max-lines", "max-args", "max-procs",
        "max-chars", "process-slot-var"})),
    "busybox": _Wrapper(),
    "setsid": _Wrapper(),
    "stdbuf": _Wrapper("ioe", frozenset({"input", "output", "error"})),
    "chroot": _Wrapper("", frozenset({"userspec", "groups"}), operands=1),
    "eval": _Wrapper(script=True),
    "ssh": _Wrapper("BbcDEeFIiJLlmOoPpQRSWw", operands=1, script=True),
    "watch": _Wrapper("n", frozenset({"interval"}), script=True),
    "coproc": _Wrapper(),
    "flock": _Wrapper("wEc", frozenset({"timeout", "conflict-exit-code"}), operands=1),
    "pkexec": _Wrapper("", frozenset({"user"})),
    # Its namespace options take a file only as `--mount=FILE`; -t, -S and -G take a value.
    "nsenter": _Wrapper("tSG", frozenset({"target", "setuid", "setgid"})),
    "unshare": _Wrapper(""),
    "ionice": _Wrapper("cnp", frozenset({"class", "classdata", "pid"})),
    "taskset": _Wrapper("", operands=1),
    "caffeinate": _Wrapper(),
    "strace": _Wrapper("abeEIoOpPsSuUX", frozenset({
        "output", "trace", "signal", "attach", "user", "env", "string-limit", "columns",
        "trace-path", "summary-sort-by", "inject", "fault", "status", "abbrev", "verbose",
        "raw", "read", "write"})),
    "ltrace": _Wrapper("aAeEFlnopsuwxX", frozenset({"output", "library", "align", "indent"})),
    "systemd-run": _Wrapper("upHME", frozenset({
        "unit", "property", "description", "slice", "uid", "gid", "nice", "working-directory",
        "setenv", "host", "machine", "service-type", "on-active", "on-boot", "on-startup",
        "on-unit-active", "on-unit-inactive", "on-calendar", "path-property",
        "socket-property", "timer-property"})),
    "setpriv": _Wrapper("", frozenset({
        "reuid", "regid", "ruid", "euid", "rgid", "egid", "groups", "inh-caps", "ambient-caps",
        "bounding-set", "securebits", "selinux-label", "apparmor-profile", "pdeathsig",
        "landlock-access", "landlock-rule"})),
    # `runuser -u USER CMD` (with -c it runs a script: _SCRIPT_OPTION).
    "runuser": _Wrapper("ugGsw", frozenset({
        "user", "group", "supp-group", "shell", "whitelist-environment"})),
    "chrt": _Wrapper("T", frozenset({"sched-runtime", "sched-deadline", "sched-period"}),
                     operands=1),
    "setarch": _Wrapper("", operands=1),
    "gosu": _Wrapper("", operands=1),
    "su-exec": _Wrapper("", operands=1),
    "setuidgid": _Wrapper("", operands=1),
    "prlimit": _Wrapper("p", frozenset({"pid", "output"})),
    "numactl": _Wrapper("CimNpP", frozenset({
        "physcpubind", "interleave", "membind", "cpunodebind", "preferred"})),
    "unbuffer": _Wrapper(),
    "faketime": _Wrapper("", operands=1),
    "torsocks": _Wrapper("uPa", frozenset({"user", "pass", "address", "port"})),
    "proxychains": _Wrapper("f"),
    "proxychains4": _Wrapper("f"),
    "firejail": _Wrapper(),  # its options are all --name=value
    "fakeroot": _Wrapper("ls", frozenset({"lib", "faked"})),
    "parallel": _Wrapper("adEIjLnNSsC", frozenset({
        "arg-file", "delimiter", "jobs", "max-args", "max-lines", "sshlogin", "sshloginfile",
        "joblog", "results", "tmpdir", "workdir", "wd", "timeout", "delay", "retries",
        "colsep", "max-chars", "tagstring", "env", "load", "memfree", "basefile",
        "transfer-file", "return", "template"})),
    # `screen CMD ARGS` (and `screen -X stuff TEXT`, which types TEXT: _typed).
    "screen": _Wrapper("cehpSTts", operands=0),
}
# Programs whose subcommand runs a command: `kubectl exec POD -- CMD`, `docker exec C CMD`,
# `tmux new-session 'CMD'`, `tmux send-keys 'CMD' Enter` (keys typed into a shell: _typed).
_KUBECTL_EXEC = _Wrapper("cf", frozenset({"container", "filename", "pod-running-timeout"}),
                         operands=1, dashes=True)
_DOCKER_EXEC = _Wrapper("ewu", frozenset({"env", "env-file", "user", "workdir",
                                          "detach-keys"}), operands=1)
_SUBCOMMANDS: dict[str, dict[str, _Wrapper]] = {
    "kubectl": {"exec": _KUBECTL_EXEC},
    "oc": {"exec": _KUBECTL_EXEC},
    "docker": {"exec": _DOCKER_EXEC},
    "podman": {"exec": _DOCKER_EXEC},
    "nerdctl": {"exec": _DOCKER_EXEC},
    "tmux": {
        **dict.fromkeys(("new-session", "new"), _Wrapper("cefFnstxy", script=True)),
        **dict.fromkeys(("new-window", "neww"), _Wrapper("ceFnt", script=True)),
        **dict.fromkeys(("split-window", "splitw"), _Wrapper("ceFlt", script=True)),
        **dict.fromkeys(("respawn-pane", "respawnp", "respawn-window", "respawnw"),
                        _Wrapper("cet", script=True)),
        **dict.fromkeys(("run-shell", "run"), _Wrapper("cdt", script=True)),
        **dict.fromkeys(("display-popup", "popup"), _Wrapper("bcdeEhsStTwxy", script=True)),
        **dict.fromkeys(("send-keys", "send"), _Wrapper("Nt", script=True)),
    },
}
# What runs its operands as given to it, without a command of its own: `xargs CMD` and
# `parallel CMD` take the command's operands from stdin (or `:::`).
_FEEDS = frozenset({"xargs", "parallel"})
# Programs that run a script given with `-c` (or `--command`), as su does.
_SCRIPT_OPTION = frozenset({"su", "runuser", "script", "flock", "sg"})
# Key names of tmux's send-keys that type a blank or end a line.
_KEYS = {"Enter": "\n", "C-m": "\n", "KPEnter": "\n", "C-j": "\n", "Space": " ", "Tab": " "}
# A program word the shell expands into other words: a glob or a brace list (`/bin/r?`,
# `/bin/{rm,x}`): what runs is only known when it runs.
_GLOB = re.compile(r"[*?\[]|\{[^{}]*,")
# Programs that change the folder the next commands run in (_Folders.change).
_FOLDER_CHANGERS = frozenset({"cd", "pushd", "popd"})


class _Unbalanced(ValueError):
    """sh would refuse the text: an unclosed quote or substitution."""


# A simple command as parsed: its words, whether its stdin is a pipe or a redirection, the
# files its input redirections read.
_Simple = tuple[list[str], bool, list[str]]


OpaqueReason = Literal["computed_program", "computed_script", "inline_code", "stdin_operands",
                       "too_deep", "recursive_function", "unknown_program", "script_file",
                       "changes_state", "runs_program", "unread_input", "computed_operand",
                       "glob_operands", "history", "unread_upload"]


class Opaque(TypedDict):
    """A command whose program, script or operands are only known when it runs."""

    argv: list[str]
    why: OpaqueReason


@dataclass(slots=True)
class _Folders:
    """Where the commands read so far leave the shell (`cd`, `pushd`, `popd`): the folder
    the next one runs in, relative to where the text starts (`""` there; else `/etc`,
    `~/x`, `../..`, or `$D/x` when computed), the one before it (`cd -`), pushd's stack."""

    here: str = ""
    previous: str = ""
    stack: list[str] = field(default_factory=list)

    def copy(self) -> _Folders:
        return _Folders(self.here, self.previous, list(self.stack))

    def change(self, argv: list[str]) -> None:
        """Follow `argv`, a cd, pushd or popd. What it cannot follow (`pushd +1`, a swap)
        leaves a computed folder, which a policy judges as it judges `$D`."""
        name = argv[0]
        operands = [a for a in argv[1:] if a == "-" or a[:1] != "-"]
        if name == "popd":
            if self.stack:
                self.previous, self.here = self.here, self.stack.pop()
            return
        if name == "pushd":
            self.stack.append(self.here)
        target = operands[0] if operands else "~" if name == "cd" else "$DIRSTACK"
        if target == "-":
            new = self.previous
        elif target[:1] == "+":
            new = "$DIRSTACK"
        else:
            new = _resolve(target, self.here)
        self.previous, self.here = self.here, new

    def locate(self, argv: list[str]) -> list[str] | None:
        """`argv` with its path operands where they land (after a `cd`, or through `..`),
        or None when none moves."""
        located = [argv[0], *map(self._word, argv[1:])]
        return located if located != argv else None

    def _word(self, word: str) -> str:
        key, eq, value = word.partition("=")
        if eq and value and key.isalpha():
            return f"{key}={self._word(value)}"  # dd's `of=sda`
        if (not word or word[:1] in "-+" or "://" in word or "{}" in word
                or any(c.isspace() for c in word)):
            return word
        if (self.here and word[:1] not in "/~$`") or ".." in word.split("/"):
            return _resolve(word, self.here)
        return word


@dataclass(slots=True)
class Reading:
    """What a command line runs: `commands` (argvs), `opaque` (the commands whose program,
    script or operands are only known when they run, `why` explained in OPAQUE_REASONS)
    and `writes` (the files its output redirections write, and the files programs write
    over: `programs.writes_of`), of which `overwrites` are those written from their start
    (all but `>>` and `tee -a`: what was in them is gone). A command whose path operands
    land elsewhere than they read, after a `cd` or through `..` (`cd /etc && rm -rf *`,
    `rm -rf x/../..`), is in `commands` twice: as written, then with them resolved
    (`rm -rf /etc/*`, `rm -rf ..`); one that reads a file its words do not name is given
    again after it as `< path CMD...` (`_reads`)."""

    commands: list[list[str]] = field(default_factory=list)
    opaque: list[Opaque] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    overwrites: list[str] = field(default_factory=list)
    where: _Folders = field(default_factory=_Folders, repr=False, compare=False)
    # The text's own variables: a literal value, or None when only known at run time.
    assigned: dict[str, str | None] = field(default_factory=dict, repr=False, compare=False)
    interactive: bool = field(default=False, repr=False, compare=False)

    def mark(self, argv: list[str], why: OpaqueReason) -> None:
        self.opaque.append({"argv": argv, "why": why})


OPAQUE_REASONS: dict[OpaqueReason, str] = {
    "computed_program": "the program is a substitution, a variable or a glob: "
                        "`$(echo rm) -rf /`, `/bin/r? -rf /`",
    "computed_script": "a script computed or read at run time: `source <(curl ...)`, "
                       "`bash \"$x\"`, a shell or a database client fed by a pipe, `<` or "
                       "a here-document, `parallel` without a command",
    "inline_code": "another language's code: `python -c`, `perl -e`, `node -e`, `php -r`, "
                   "`awk` calling system() or a pipe or naming its files (ARGV), sqlite3's "
                   "readfile() or `.shell`",
    "stdin_operands": "operands read at run time: `xargs CMD`, `parallel CMD`, "
                      "`find -exec CMD {}`, a list of files `tar -T`, `cpio -o` or `sort "
                      "--files0-from` reads",
    "too_deep": f"scripts nested deeper than {_MAX_DEPTH} levels",
    "recursive_function": "a function that calls itself (the fork bomb's shape)",
    "unknown_program": "a program named by a path that is not an installed one: `./zap`, "
                       "`/tmp/x`, `~/bin/x` (a file a session may have written or copied)",
    "script_file": "a script file run by a shell, `source` or an interpreter: `sh f`, "
                   "`. ./f`, `python3 x.py`, `awk -f p` (its lines are not read here)",
    "changes_state": "changes what later lines run: PROMPT_COMMAND, PATH, IFS, LD_PRELOAD "
                     "and other steering variables, `trap`, `alias`, a function, `set`, "
                     "`shopt`, `fc`, `exec` redirections, `at`, `crontab`",
    "runs_program": "an option that runs another program: `tar --to-command`, `rsync -e`, "
                    "`git -c core.pager=...`, `ssh -o ProxyCommand`, GNU sed's `e`",
    "unread_input": "writes files named inside input tollgate does not read: `tar -x` or "
                    "`cpio -i` fed by the client or a pipe",
    "computed_operand": "an operand, or a file redirected in, only known when it runs: "
                        "`$(...)`, backticks, a variable the text did not set (`< \"$f\"`)",
    "glob_operands": "a glob the host expands against its own listing: `rm -r *.log`, "
                     "`[!.]*` (one that matches every name is also judged as `*`)",
    "history": "history expansion re-runs or edits an earlier line: `!!`, `!rm`, `^a^b`",
    "unread_upload": "(SSH) a file this session uploaded that tollgate cannot read "
                     "(interpret/ssh.py's run_uploads)",
}


def looks_like_shell(text: str) -> bool:
    """Whether `text` may be a command line worth reading with `commands`.

    False only for what cannot start a command: blank text, or text starting with a
    non-ASCII character or a closing bracket, with no operator (`;`, `&`, `|`, a
    backtick, `$(`) or newline anywhere. Generous on purpose: a false positive costs one
    read (~0.25 µs a character); a false negative would hide a command, and commands
    start with unlikely characters (`{rm,-rf,/}`, `>x rm -rf /`, `"r"m -rf /`).
    """
    return _LOOKS_LIKE_SHELL.search(text) is not None


def commands(text: str) -> list[list[str]]:
    """The argv of every command `text` would run, wrappers and nested scripts unwrapped."""
    return read(text).commands


def read(text: str, stdin: bool = False, interactive: bool = False) -> Reading:
    """The commands `text` would run, those of them that are opaque, and what it writes.
    `stdin`: the text runs with a stdin nobody here reads (an SSH exec's channel, where
    `ssh host sh < script.sh` sends the script): every command of it, at any depth, is
    read as one fed by a pipe, so a shell or an interpreter without a script is opaque.
    `interactive`: a line typed into a shell, where history expansion (`!!`) applies."""
    reading = Reading(interactive=interactive)
    _read(text, 0, reading, stdin)
    return _plain(reading)


def argv_read(argv: list[str], stdin: bool = False) -> Reading:
    """`read` of an argv run without a shell (a tool's `["bash", "-lc", "..."]`, kubectl
    exec's `command`): its `commands` are the argv itself, then what it runs when it is a
    wrapper or a shell (`["sudo", "rm", ...]`, `["sh", "-c", "rm -rf /"]`). It is read as
    the command line it would be once joined with quotes, so each item stays one word
    (`["echo", "$(rm -rf /)"]` runs no rm) and argv[0] is reduced to its basename as
    `commands` does. `stdin`: it runs with a stdin tollgate does not read (`kubectl exec
    -i`), unless it is a shell session (`-- sh`), whose lines the front reads one by one."""
    stdin = stdin and not session_shell(argv)
    reading = read(shlex.join(argv), stdin=stdin) if argv else Reading()
    if argv and not reading.commands:
        reading.commands.append(argv)
    return reading


def _plain(reading: Reading) -> Reading:
    """`reading` with every word a plain `str`: a Word's marks are the reader's own, and
    encoders that check exact types (OpenTelemetry's, orjson) must not meet one."""
    for argv in (*reading.commands, *(o["argv"] for o in reading.opaque), reading.writes,
                 reading.overwrites):
        if any(type(w) is not str for w in argv):
            argv[:] = [str(w) for w in argv]
    return reading


def session_shell(argv: list[str]) -> bool:
    """Whether `argv` is a shell with no script: a session reading its lines from stdin."""
    return bool(argv) and _basename(argv[0]) in _SHELLS and all(
        (a.startswith("--") and a != "--command" and not a.startswith("--command="))
        or (a[:1] == "-" and a[1:2] != "-" and "c" not in a) for a in argv[1:])


def _read(text: str, depth: int, reading: Reading, session: bool = False,
          keep: bool = False) -> None:
    """Read `text` into `reading`; a nested script's `cd` ends with it, unless `keep` (eval)."""
    if depth > _MAX_DEPTH:
        reading.mark([text], "too_deep")
        return
    outer = reading.where.copy() if depth and not keep else None
    try:
        simple, substitutions = _parse(text, reading)
    except _Unbalanced:
        simple, substitutions = [(text.split(), False, [])], []
    defining: str | None = None  # the function whose body is being read
    braces = 0
    for words, stdin, inputs in simple:
        _expand(words, stdin or session, depth, reading, session)
        _redirected_in(inputs, words, reading)
        if words[:1] == ["function"] and len(words) > 1:
            defining, braces = words[1], 0
        elif defining is not None and words:
            braces += words.count("{") - words.count("}")
            if words[words[0] == "{":][:1] == [defining]:
                reading.mark(["function", defining], "recursive_function")
                defining = None
            elif braces <= 0:
                defining = None
    for inner in substitutions:
        _read(inner, depth + 1, reading, session)
    if outer is not None:
        reading.where = outer


def _parse(text: str, reading: Reading) -> tuple[list[_Simple], list[str]]:
    """Simple commands (their words, whether their stdin is a pipe or a redirection, the
    files their input redirections read) and the texts of command substitutions; output
    redirections' targets go to `reading`."""
    tokens, substitutions = _lex(text)
    simple: list[_Simple] = []
    words: list[str] = []
    inputs: list[str] = []
    redirect: str | None = None  # the operator whose target comes next
    stdin = False
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "word":
            if redirect is None:
                words.append(value)
            else:
                if ">" in redirect and not value.isdigit() and value != "-":
                    reading.writes.append(value)
                    if ">>" not in redirect:
                        reading.overwrites.append(value)
                if redirect.lstrip("0123456789") in ("<", "<>"):
                    inputs.append(value)
            redirect = None
            continue
        if kind == "redir":
            redirect = value
            stdin = stdin or (value.lstrip("0123456789")[:1] == "<" and value[-1] != ">")
            continue
        redirect = None
        if value == "(" and i < len(tokens) and tokens[i] == ("sep", "(") and not words:
            i = _arithmetic_command(tokens, i + 1, simple)
            continue
        if value == "(" and i < len(tokens) and tokens[i] == ("sep", ")") and len(words) == 1:
            words.insert(0, "function")  # `name()`: a definition, its body follows
            i += 1
        if words or inputs:
            simple.append((words, stdin, inputs))
            words, inputs = [], []
        stdin = value in ("|", "|&")
    if words or inputs:
        simple.append((words, stdin, inputs))
    return simple, substitutions


def _arithmetic_command(tokens: list[tuple[str, str]], i: int, simple: list[_Simple]) -> int:
    """bash's `(( expr ))` from after its `((`: a command `((` whose operands are the
    expression's words; where the tokens after it resume."""
    expression: list[str] = []
    while i < len(tokens) and tokens[i][0] == "word":
        expression.append(tokens[i][1])
        i += 1
    while i < len(tokens) and tokens[i] == ("sep", ")"):
        i += 1
    simple.append((["((", *expression], False, []))
    return i


def _lex(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Words (quotes removed, each a Word) and operators, as sh tokenises; raises _Unbalanced."""
    tokens: list[tuple[str, str]] = []
    substitutions: list[str] = []
    word: _Parts | None = None
    pos, end = 0, len(text)
    while pos < end:
        m = _UNQUOTED.match(text, pos)
        if m is None:
            raise _Unbalanced(f"unclosed quote or escape at {pos}")
        kind = m.lastgroup or ""  # every alternative is a named group
        pos = m.end()
        if kind in ("blank", "sep", "redir"):
            if word is not None:
                tokens.append(("word", word.word()))
                word = None
            if kind != "blank":
                tokens.append((kind, m.group()))
        elif kind == "comment":
            if word is None:
                continue
            word.append("#")  # inside a word, `#` is a character
            pos = m.start() + 1
        else:
            if word is None:
                word = _Parts()
            if kind in _AS_IS:
                word.append(m.group(kind), expands=kind == "plain")
            elif kind == "var":
                word.variable(m.group())
            else:
                pos = _quoted_or_substituted(text, m, word, substitutions)
    if word is not None:
        tokens.append(("word", word.word()))
    return tokens, substitutions


_AS_IS = frozenset({"plain", "single", "escaped"})  # word parts taken as they match


class Word(str):
    """A word as sh reads it, quotes removed, with what sh will still expand in it: `glob`
    (an unquoted `*`, `?`, `[` or brace expression), `names` (the variables it reads) and
    `computed` (a command substitution). A word built otherwise is a plain `str`."""

    glob: bool = False
    names: tuple[str, ...] = ()
    computed: bool = False
    history: bool = False
    evaluates: bool = False  # bash evaluates a value in it as code: `$((x))`, `${!x}`


class _Parts:
    """The parts of the word being lexed, and what in them sh expands."""

    __slots__ = ("computed", "evaluates", "glob", "history", "names", "parts", "tilde")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.tilde = False  # opened by an echoed tilde word: nothing may follow it
        self.glob = False
        self.names: list[str] = []
        self.computed = False
        self.history = False
        self.evaluates = False

    def append(self, part: str, expands: bool = False, unquoted: bool = False) -> None:
        """`expands`: an unquoted part, globbed; `unquoted`: outside single quotes, where
        an interactive bash expands `!`."""
        self._after_tilde()
        self.parts.append(part)
        if expands and _GLOB_CHARS.search(part):
            self.glob = True
        if (expands or unquoted) and "!" in part and _HISTORY.search(part):
            self.history = True

    def variable(self, reference: str) -> None:
        """`$name`, `${name...}`, `$1`, `$?`: the name it reads (with its operators, which
        only a name of its own leaves known)."""
        self._after_tilde()
        self.parts.append(reference)
        if reference[1:2] == "[":  # `$[x]`: arithmetic, whose names bash evaluates
            self.computed = True
            self.evaluates = self.evaluates or _NAME.search(reference) is not None
        elif reference[1:2] == "{":
            inner = reference[2:-1]
            if _PLAIN_BRACED.fullmatch(inner) is None:  # `${!x}`, `${x@P}`, `${x:a[i]}`
                self.evaluates = True
            name = _NAME.search(inner)
            self.names.append(name.group() if name is not None else inner)
        else:
            self.names.append(reference[1:])

    def substitution(self, part: str, quoted: bool = False) -> None:
        """`$(...)` or a backtick pair: computed, unless, inside double quotes (where its
        output is neither split nor globbed), it only echoes literal words (Ansible's
        `` mkdir "` echo /tmp/x `" ``), which stand for what they print; or, opening the
        word, echoes one word that opens with a tilde prefix (`` "` echo ~/.ansible/tmp
        `" ``), which stands for that word unquoted: the same path the reader gives `~/x`
        (what would follow it, `~` + `x` read as `~x`, is computed)."""
        self._after_tilde()
        inner = part[1:-1] if part[:1] == "`" else part[2:-1]
        echoed = _LITERAL_ECHO.fullmatch(inner) if quoted else None
        if echoed is not None:
            self.parts.append(" ".join(echoed.group(1).split()))
            return
        tilde = _TILDE_ECHO.fullmatch(inner) if quoted else None
        if tilde is not None and not "".join(self.parts):
            self.parts[:] = [tilde.group(1)]
            self.tilde = True
            return
        self.parts.append(part)
        if part[:3] == "$((" and _PURE_ARITHMETIC.fullmatch(inner):
            return  # numbers and operators: runs nothing, reads nothing
        self.computed = True
        if part[:3] == "$((":
            self.evaluates = True

    def _after_tilde(self) -> None:
        if self.tilde:
            self.computed = True

    def word(self) -> str:
        """The word: a Word when sh still expands something in it, else a plain str."""
        if not (self.glob or self.names or self.computed or self.history or self.evaluates):
            return "".join(self.parts)
        word = Word("".join(self.parts))
        if self.glob:
            word.glob = True
        if self.names:
            word.names = tuple(self.names)
        if self.computed:
            word.computed = True
        if self.history:
            word.history = True
        if self.evaluates:
            word.evaluates = True
        return word


# A name, as bash's arithmetic evaluates one (its value, recursively, as an expression).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `${...}` that expands no value as code: a name, its length, a default or a pattern
# removal (whose words the lexer saw literal), a substring of numbers.
_PLAIN_BRACED = re.compile(r"#?[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-=+?]|##?|%%?|//?)[^{}]*"
                           r"|:[0-9 ]+(?::[0-9 ]+)?)?|#?[0-9]+|[?#$@*-]")
# A substitution that prints literal words alone: `$(echo /tmp/x)`, `` ` echo a b ` ``.
_LITERAL_ECHO = re.compile(r"\s*echo((?:\s+[A-Za-z0-9_./=:+,@%-]+)*)\s*")
# One word opening with a tilde prefix (`~`, `~user`: POSIX's portable user names) echoed.
_TILDE_ECHO = re.compile(r"\s*echo\s+(~[A-Za-z0-9_.-]*(?:/[A-Za-z0-9_./=:+,@%-]*)?)\s*")
# What bash's history expansion reads: `!` not followed by a blank, `=` or `(`, nor
# opening a glob's negated class (`[!.]*`, which bash leaves alone).
_HISTORY = re.compile(r"(?<!\[)!(?![\s=(]|$)")
# What an unquoted part may expand by: a glob's characters, a brace expression.
_GLOB_CHARS = re.compile(r"[*?\[]|\{[^{}]*(?:,|\.\.)[^{}]*\}")


def _quoted_or_substituted(text: str, m: re.Match[str], word: _Parts,
                           substitutions: list[str]) -> int:
    """Add to `word` the part `m` opens that is more than its match (a double-quoted
    string, a substitution, an ANSI-C string); return where it ends."""
    kind, pos = m.lastgroup, m.end()
    if kind == "double":
        return _double_quoted(text, pos, word, substitutions)
    if kind == "ansi":
        word.append(_ANSI_ESCAPE.sub(_ansi_char, m.group("ansi")))
        return pos
    pos = _substitution(text, m.start(), pos, m.group(), substitutions)  # $( ` <( >(
    word.substitution(text[m.start():pos])
    return pos


def _double_quoted(text: str, pos: int, word: _Parts, substitutions: list[str]) -> int:
    """Read a double-quoted string from after its `"`; return where it ends."""
    while True:
        m = _DOUBLE.match(text, pos)
        if m is None:
            raise _Unbalanced("unclosed double quote")
        kind = m.lastgroup or ""
        pos = m.end()
        if kind == "end":
            return pos
        if kind == "subst":
            pos = _substitution(text, m.start(), pos, m.group(), substitutions)
            word.substitution(text[m.start():pos], quoted=True)
        elif kind == "var":
            word.variable(m.group())
        elif kind == "escaped":
            word.append("" if m.group(kind) == "\n" else m.group(kind))
        else:
            word.append(m.group(kind), unquoted=True)


def _substitution(text: str, start: int, pos: int, opener: str, found: list[str]) -> int:
    """Record the inner text of `$(...)` or a backtick pair opening at `start`; return
    where it ends."""
    if opener == "`":
        close = pos
        while True:
            close = text.find("`", close)
            if close < 0:
                raise _Unbalanced("unclosed backtick")
            if text[close - 1] != "\\":
                break
            close += 1
        found.append(text[pos:close].replace("\\`", "`"))
        return close + 1
    depth = 1
    for m in _PARENS.finditer(text, pos):
        token = m.group()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth == 0:
                inner = text[pos:m.start()]
                if not _PURE_ARITHMETIC.fullmatch(inner):
                    found.append(inner)
                return m.end()
    raise _Unbalanced(f"unclosed $( at {start}")


def _ansi_char(m: re.Match[str]) -> str:
    """One escape of bash's $'...' quoting."""
    escape = m.group(1)
    head = escape[0]
    if head in "xuU" and len(escape) > 1:
        code = int(escape[1:], 16)
    elif head in "01234567":
        code = int(escape, 8)
    elif head == "c" and len(escape) == 2:
        return chr(ord(escape[1]) & 0x1F)
    else:
        return _ANSI_SIMPLE.get(escape, "\\" + escape)
    # No lone surrogates: argv must stay encodable as the policy's JSON input.
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _expand(words: list[str], stdin: bool, depth: int, reading: Reading,
            session: bool = False) -> None:
    """Append the argv of one simple command, then those of the commands it runs; mark
    those that are opaque.

    The commands a wrapper or `find -exec` runs are ranges of the same words, read in a
    loop: `nohup nohup ... rm` costs linear time, and at most _MAX_LAYERS of its argvs
    are returned beside the innermost command's. A range whose operands are supplied when
    it runs (`xargs CMD`, `find -exec CMD {}`) is opaque, and so is what it wraps."""
    if any("{" in w or "IFS" in w for w in words):
        words = [part for w in words for part in _split_word(w)]
    found = reading.commands
    pending = [(0, len(words), False)]
    layers = 0
    terminators: list[int] | None = None  # for find -exec, computed when one shows up
    while pending:
        start, stop, fed = pending.pop()
        first, start = start, _command_start(words, start, stop, reading)
        if first < start:
            _assign(words[first:start], words[start:stop], depth, reading)
        if start == stop:
            continue
        name = _basename(words[start])
        argv = [name, *words[start + 1:stop]]
        if name == "find":
            terminators = terminators or _terminators(words)
            inner = [(i, j, fed or any("{}" in w for w in words[i:j]))
                     for i, j in _find_exec(words, start, stop, terminators)]
            script, why = None, None
        else:
            inner, script, why = _runs(words, start, stop, argv, fed, stdin)
        if _computed(name, words[start]):
            why = "computed_program"
        elif why is None and fed:
            why = "stdin_operands"
        if not inner or layers < _MAX_LAYERS:
            if why is None and not (inner and name == "exec"):
                # a wrapper by its own words: what it runs is read on its own (`exec CMD`
                # replaces the shell with CMD; only a bare `exec` redirects the shell)
                own = [name, *words[start + 1:inner[0][0]]] if inner else argv
                why = _unread(words[start], own, stdin, reading, script is None)
            _effects(argv, why, depth, reading, session)
            found.append(argv)
            layers += bool(inner)
            if why is not None:
                _mark(argv, why, depth, reading)
        _follow(argv, bool(inner) or script is not None, reading)
        if script is not None:
            _read(script, depth + 1, reading, session, keep=name == "eval")
        pending.extend(reversed(inner))


def _redirected_in(files: list[str], words: list[str], reading: Reading) -> None:
    """Judge the files a command's input redirections read (`base32 < f`) as its operands
    are: one only known when it runs (`< "$f"`, `< $(...)`, `$(< $f)`) makes it opaque
    (computed_operand); one that a variable of the text or a `cd` makes another path is
    given as read (`f=.e; base32 < ${f}nv` gives `< .env base32`). A literal one is in
    the text, which the policy reads too; a process substitution (`done < <(ls)`) is the
    output of commands read here."""
    for file in files:
        if file[:2] == "<(":
            continue
        if _computed_operand(file, reading):
            reading.mark(["<", file, *words], "computed_operand")
            continue
        named = (_substituted(["<", file], reading) or ["<", file])[1]
        if named != file or reading.where.locate(["<", named]) is not None:
            _reads(named, words, reading)


def _reads(path: str, argv: list[str], reading: Reading) -> None:
    """Give `argv` again as reading `path`, where that lands, as `< path argv` (no operand:
    `tee log < /etc/hosts` writes no /etc/hosts): a file read is judged by its path,
    whichever program reads it and however it names it."""
    read = ["<", path]
    reading.commands.append([*(reading.where.locate(read) or read), *argv])


def _follow(argv: list[str], wraps: bool, reading: Reading) -> None:
    """Follow `argv` when it changes the folder; else, unless it only wraps another command
    (judged itself), give it again where its paths land, and as reading the files its
    script names (sed's `r F`)."""
    if argv[0] in _FOLDER_CHANGERS:
        reading.where.change(argv)
    elif not wraps:
        located = reading.where.locate(argv)
        if located is not None:
            reading.commands.append(located)
        for path in programs.reads_of(argv):
            _reads(path, argv, reading)


def _effects(argv: list[str], why: OpaqueReason | None, depth: int, reading: Reading,
             session: bool) -> None:
    """What `argv` does besides running: the files it writes over, and the command lines a
    state change will run later (a trap's, an alias's), read now."""
    written = programs.writes_of(argv)
    reading.writes.extend(written)
    if not programs.appends(argv):
        reading.overwrites.extend(written)
    for later in programs.later_scripts(argv) if why == "changes_state" else ():
        _read(later, depth + 1, reading, session)


def _assign(assignments: list[str], command: list[str], depth: int, reading: Reading) -> None:
    """Follow the assignments before a command (or alone on it): a steering variable
    (PROMPT_COMMAND, PATH, LD_PRELOAD, ...) is opaque, it changes what runs; a line's own
    variable is remembered with its value when that is literal (`f=x; cat $f` reads x)."""
    for word in assignments:
        match = _ASSIGNMENT.match(word)
        if match is None:
            continue  # a reserved word
        name = match.group().rstrip("+=")
        if programs.steering(word):
            reading.mark([word, *command], "changes_state")
            for later in programs.later_scripts([word]):
                _read(later, depth + 1, reading)
        elif not command:
            value = word[match.end():]
            literal = not (getattr(word, "names", ()) or getattr(word, "computed", False)
                           or getattr(word, "glob", False) or "+=" in match.group())
            reading.assigned[name] = value if literal else None


def _unread(word: str, argv: list[str], stdin: bool, reading: Reading,
            judge_operands: bool = True) -> OpaqueReason | None:
    """Why a command whose program is named is still not read whole (None: it is): what it
    runs, changes or touches is only known to the host. `word` is the program as written;
    `judge_operands`: judge them too (not for a script read on its own: `sh -c "$x"`)."""
    if reading.interactive and (word[:1] == "^" or any(
            getattr(w, "history", False) for w in [word, *argv[1:]])):
        return "history"
    if "/" in word and not programs.installed_path(word):
        return "unknown_program"
    why = programs.why_unread(argv, stdin)
    if why is not None:
        return why
    return _operands_unread(argv, reading) if judge_operands else None


def _operands_unread(argv: list[str], reading: Reading) -> OpaqueReason | None:
    """Why `argv`'s operands leave it unread: a value bash evaluates as code, one computed
    at run time, a glob the host expands (None: they are read). Read ones are given again
    where they differ from the words (a variable's literal value, a glob of every name)."""
    name, operands = argv[0], argv[1:]
    if name not in _EXPRESSIONS and not any(getattr(w, "__dict__", None) for w in operands):
        return None  # no operand carries an expansion (a Word's marks live in its dict)
    if _evaluates(name, operands):
        return "computed_operand"
    if name not in programs.DATA_OPERANDS and any(_computed_operand(w, reading)
                                                  for w in operands):
        return "computed_operand"
    known = _substituted(argv, reading)
    if known is not None:
        reading.commands.append(known)
    globs = [w for w in operands if getattr(w, "glob", False)]
    if not globs:
        return None
    everything = [_everything(w) if w in globs else w for w in operands]
    if everything != operands:
        reading.commands.append([name, *everything])
    # A glob of every name is read: the folder's every entry (`*`, `?*`, `/var/log/*`),
    # unless those entries may be read as the program's options: a name of the folder can
    # be `--checkpoint-action=exec=...` (`tar cf x *`), before any `--`.
    partial = any(_everything(w) == w and w.rpartition("/")[2] != "*" for w in globs)
    end = operands.index("--") if "--" in operands else len(operands)
    options = any(w[:1] in "*?[" for w in globs if operands.index(w) < end)
    return "glob_operands" if partial or options else None


def _evaluates(name: str, operands: list[str]) -> bool:
    """Whether bash evaluates a value of `operands` as code: an arithmetic expression
    naming a variable (`(( x ))`, `let x`, `[[ x -eq 0 ]]`, `$((x))`: the variable's value
    is evaluated in turn, and `a[$(cmd)]` in it runs cmd), an indirection or a prompt
    expansion (`${!x}`, `${x@P}`), or a variable name with a subscript given to a builtin
    that assigns or tests it (`printf -v 'a[$(cmd)]'`, `read`, `test -v`)."""
    if any(getattr(w, "evaluates", False) for w in operands):
        return True
    if name in ("((", "let") or (name == "[[" and any(o in _ARITHMETIC_TESTS
                                                       for o in operands)):
        return any(_NAME.search(w) and w not in _ARITHMETIC_TESTS for w in operands
                   if w not in ("]]", "))"))
    return name in _NAME_TAKERS and any(_SUBSCRIPT.search(w) for w in operands)


# `[[`'s comparisons of arithmetic values; builtins that take variable names; a subscript
# whose text bash expands (arithmetic, with substitutions).
_ARITHMETIC_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_NAME_TAKERS = frozenset({"printf", "read", "mapfile", "readarray", "test", "[", "[[", "unset",
                          "getopts", "wait", "declare", "typeset", "local", "export",
                          "readonly", "let", "((", "compgen"})
_SUBSCRIPT = re.compile(r"\[[^\]]*[$`(]")
# Programs whose plain operands may still be evaluated (arithmetic, variable names).
_EXPRESSIONS = _NAME_TAKERS


def _computed_operand(word: str, reading: Reading) -> bool:
    """Whether the value of `word` is only known when it runs: a command substitution, or a
    variable that is neither the session's own (HOME, PATH, ...) nor set literally earlier
    in the same text."""
    if getattr(word, "computed", False):
        return True
    return any(n not in programs.ENVIRONMENT and reading.assigned.get(n) is None
               for n in getattr(word, "names", ()))


def _substituted(argv: list[str], reading: Reading) -> list[str] | None:
    """`argv` with the variables set earlier in the text replaced by their values, or None
    when it reads none."""
    out, changed = [argv[0]], False
    for word in argv[1:]:
        names = [n for n in getattr(word, "names", ()) if reading.assigned.get(n) is not None]
        for n in names:
            value = reading.assigned[n] or ""
            word = word.replace("${" + n + "}", value).replace("$" + n, value)
            changed = True
        out.append(word)
    return out if changed else None


# Names a glob that matches every name of a folder must match (bash's default: names
# starting with `.` only by a pattern that starts with one).
_ANY_NAMES = ("a", "Z", "0", "_", "-", "x.y", "a b")


def _everything(word: str) -> str:
    """`word`, a glob, as `folder/*` when its last segment matches every visible name of
    its folder (`?*`, `[!.]*`, `*[^/]`): the shell passes all of them, as `*` does."""
    folder, slash, last = word.rpartition("/")
    if "/" in folder and _GLOB_CHARS.search(folder):
        return word  # a glob of folders too: judged by what it names (`/*/x`)
    patterns = [p.replace("[^", "[!") for p in _braces(last)]
    if all(any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in _ANY_NAMES):
        return f"{folder}{slash}*"
    return word


def _braces(segment: str, limit: int = 64) -> list[str]:
    """Bash's brace expansion of one segment (`{a..z}*`, `{x,y}*`), at most `limit` words."""
    match = _BRACE.search(segment)
    if match is None:
        return [segment]
    body = match.group(1)
    span = _RANGE.fullmatch(body)
    if span is not None:
        a, b = span.groups()
        if a.isdigit() and b.isdigit():
            step = 1 if int(a) <= int(b) else -1
            items = [str(i) for i in range(int(a), int(b) + step, step)]
        else:
            step = 1 if ord(a) <= ord(b) else -1
            items = [chr(i) for i in range(ord(a), ord(b) + step, step)]
    else:
        items = body.split(",")
    head, tail = segment[:match.start()], segment[match.end():]
    out: list[str] = []
    for item in items[:limit]:
        out.extend(_braces(head + item + tail, limit)[:limit - len(out)])
        if len(out) >= limit:
            break
    return out


_BRACE = re.compile(r"\{([^{}]*(?:,|\.\.)[^{}]*)\}")
_RANGE = re.compile(r"(-?[0-9]+|[A-Za-z])\.\.(-?[0-9]+|[A-Za-z])")


def _runs(words: list[str], start: int, stop: int, argv: list[str], fed: bool, stdin: bool
          ) -> tuple[list[tuple[int, int, bool]], str | None, OpaqueReason | None]:
    """What a simple command (not `find`) runs besides itself: the words of the command
    it wraps (and whether that one's operands are fed at run time), a script it runs, and
    why it is opaque by what it is (None: it is not)."""
    name = argv[0]
    if name in _SCRIPT_OPTION:
        script = _script_operand(argv)
        if script is not None:
            return [], script, None
    wrapper, at = _WRAPPERS.get(name), start
    subcommands = _SUBCOMMANDS.get(name)
    if subcommands is not None:
        at = next((i for i in range(start + 1, stop) if words[i] in subcommands), stop)
        wrapper = subcommands.get(words[at]) if at < stop else None
    if wrapper is not None:
        begin = _operands_start(words, at, stop, wrapper)
        if name == "coproc" and words[begin + 1:begin + 2] == ["{"]:
            begin += 1  # `coproc NAME { ...; }`: NAME names it, the group runs
        while name == "eval" and begin < stop and words[begin] == "eval":
            begin += 1  # `eval eval X` runs X as `eval X` does: no depth spent on it
        if words[at] in ("send-keys", "send") or (name == "screen" and words[begin:begin + 1]
                                                  == ["stuff"]):
            return [], _typed(words[begin + (name == "screen"):stop]), None
        split = _split_string(words[start + 1:begin]) if name == "env" else None
        if wrapper.script or split is not None:
            return [], " ".join([*([split] if split is not None else []), *words[begin:stop]]), None
        if begin >= stop and name == "parallel":
            return [], None, "computed_script"  # it runs its input's lines as commands
        return ([(begin, stop, fed or name in _FEEDS)] if begin < stop else []), None, None
    if name in _SHELLS:
        script = _script_operand(argv)
        return [], script, _stdin_script(argv[1:], stdin) if script is None else None
    if name in _MAYBE_OPAQUE or stdin or name.startswith(("python", "pypy")):
        return [], None, _opaque_program(argv, stdin)
    return [], None, None


def _computed(name: str, word: str) -> bool:
    """Whether the program's word is only known when it runs: a substitution, a variable,
    a process substitution, a glob or a brace list (`/bin/r?`, `/bin/{rm,x}`)."""
    return ("$" in name or "`" in name or name[:2] in ("<(", ">(")
            or (word not in ("[", "[[") and _GLOB.search(word) is not None))


def _typed(keys: list[str]) -> str:
    """The text keys type into a shell (tmux send-keys, screen's `stuff`): key names and
    escaped line ends as what they type."""
    text = "".join(_KEYS.get(k, k) for k in keys)
    return text.replace("\\n", "\n").replace("\\r", "\n").replace("^M", "\n").replace("^J", "\n")


def _resolve(word: str, here: str) -> str:
    """Where path `word` lands from folder `here` (as _Folders.here), `..` folded: what
    climbs above the start stays `..` (`../x`), above a home or a computed folder stays
    on it (`~/..`), above `/` is `/`."""
    path = word if word[:1] in "/~$`" or not here else f"{here}/{word}"
    absolute = path[:1] == "/"
    kept: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and kept and kept[-1] != ".." and (
                len(kept) > 1 or absolute or kept[0][:1] not in "~$`"):
            kept.pop()
        elif not (part == ".." and absolute):
            kept.append(part)
    joined = "/".join(kept)
    return "/" + joined if absolute else joined or "."


def _mark(argv: list[str], why: OpaqueReason, depth: int, reading: Reading) -> None:
    """Mark `argv` opaque; the strings in another language's code may be commands it runs."""
    reading.mark(argv, why)
    if why == "inline_code":
        for literal in _LITERAL.finditer(_code(argv)):
            _read(next(g for g in literal.groups() if g is not None), depth + 1, reading)


def _split_string(options: list[str]) -> str | None:
    """The command line `env -S '...'` (`--split-string`) splits into its command."""
    for i, arg in enumerate(options):
        if arg in ("-S", "--split-string") and i + 1 < len(options):
            return options[i + 1]
        if arg.startswith("--split-string="):
            return arg[15:]
        if arg[:1] == "-" and arg[1:2] != "-" and "S" in arg:
            return arg[arg.index("S") + 1:] or (options[i + 1] if i + 1 < len(options) else "")
    return None


def _stdin_script(operands: list[str], stdin: bool) -> OpaqueReason | None:
    """Why a shell, an interpreter or `source` runs a script no one can read here (None:
    it does not): a script operand computed at run time (`bash <(curl ...)`), or none at all
    while its stdin is a pipe or a redirection (`curl ... | sh`). A shell without a script
    and without such a stdin is a session (kubectl exec -it pod -- sh), not opaque."""
    script = next((a for a in operands if a[:1] not in "-+" or a == "-"), None)
    if script is None:
        return "computed_script" if stdin else None
    if script == "-" or _DYNAMIC.search(script) or script.startswith(_STDIN_FILES):
        return "computed_script"
    return "script_file"


def _opaque_program(argv: list[str], stdin: bool) -> OpaqueReason | None:
    """Why a command that is no shell is opaque: code of another language, a database
    client or `source` fed a script at run time; None when it is not."""
    name, args = argv[0], argv[1:]
    if name in ("source", "."):
        return _stdin_script(args, stdin) if args else "computed_script"
    flags = _INLINE.get(name) or (("-c",) if _PYTHON.fullmatch(name) else None)
    if flags is not None:
        if any(_takes(arg, flags) for arg in args):
            return "inline_code"
        return _stdin_script(args, stdin)
    if name in _AWKS:
        if any(arg.startswith(("-f", "--file", "-E", "--exec", "-i", "--include", "-l",
                               "--load")) for arg in args):
            return "script_file"
        return "inline_code" if _AWK_RUNS.search(_AWK_REGEX.sub("", _code(argv))) else None
    if name in _LOCAL_SQL and _LOCAL_SQL_FILES.search(_code(argv)):
        return "inline_code"
    if name in _STDIN_SCRIPTED and stdin:
        return "computed_script"
    if name in _SQL_CLIENTS and stdin:
        operands = [a for a in args if a[:1] != "-"]
        if not any(a.startswith(_SQL_SOURCES) for a in args) and (
                name != "sqlite3" or len(operands) < 2):
            return "computed_script"
    return None


def _takes(arg: str, flags: tuple[str, ...]) -> bool:
    """Whether `arg` is one of `flags` (`-c`, `--eval`), attached (`-cCODE`, `--eval=CODE`)
    or in a group of short options (`-Sc`)."""
    for flag in flags:
        if flag.startswith("--"):
            if arg == flag or arg.startswith(flag + "="):
                return True
        elif arg[:1] == "-" and arg[1:2] != "-" and flag[1] in arg:
            return True
    return False


def _code(argv: list[str]) -> str:
    """The inline code of an interpreter's argv: every operand, for reading its strings."""
    return " ".join(argv[1:])


def _command_start(words: list[str], start: int, stop: int, reading: Reading) -> int:
    """Where the program's name is, after reserved words and assignments; a function
    definition (`function f`) is recorded on the way, opaque: it changes what a later
    line's `f` runs."""
    while start < stop:
        word = words[start]
        if word == "function" and start + 1 < stop:
            reading.commands.append(["function", words[start + 1]])
            reading.mark(["function", words[start + 1]], "changes_state")
            start += 2
        elif word in _RESERVED or _ASSIGNMENT.match(word):
            start += 1
        else:
            break
    return start


def _split_word(word: str) -> list[str]:
    """Bash's brace list `{a,b}` as its words; `$IFS` as a blank (what it holds by default)."""
    brace = _BRACE_LIST.fullmatch(word)
    if brace:
        parts = brace.group(1).split(",")
    elif "IFS" in word:
        parts = [part for part in _IFS.split(word) if part]
    else:
        return [word]
    return [_keeping(word, part) for part in parts]


def _keeping(word: str, part: str) -> str:
    """`part` of `word` with what of `word`'s expansions it may still hold."""
    if not isinstance(word, Word):
        return part
    kept = Word(part)
    kept.glob = word.glob and _GLOB_CHARS.search(part) is not None
    kept.names = word.names if "$" in part else ()
    kept.computed = word.computed and ("$" in part or "`" in part)
    kept.history = word.history and "!" in part
    kept.evaluates = word.evaluates and "$" in part
    return kept


def _basename(program: str) -> str:
    _, slash, tail = program.rpartition("/")
    if not slash or not tail or "$(" in program or "`" in program:
        return program
    return tail


def _operands_start(words: list[str], start: int, stop: int, wrapper: _Wrapper) -> int:
    """Where the command wrapped by `words[start]` starts: after the wrapper's options,
    assignments and operands (and a `--` ending them)."""
    if wrapper.dashes and "--" in words[start:stop]:
        return words.index("--", start, stop) + 1
    i = start + 1
    while i < stop:
        arg = words[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            name, eq, _ = arg[2:].partition("=")
            i += 2 if name in wrapper.long_with_value and not eq else 1
        elif arg.startswith("-") and len(arg) > 1:
            i += 1
            for j, letter in enumerate(arg[1:], start=2):
                if letter in wrapper.short_with_value:
                    if j == len(arg):
                        i += 1  # `-u root`: the value is the next word (`-uroot`: attached)
                    break
        elif _ASSIGNMENT.match(arg):
            i += 1  # env VAR=x, sudo VAR=x
        else:
            break
    i += wrapper.operands
    return i + 1 if wrapper.operands and i < stop and words[i] == "--" else i


def _script_operand(argv: list[str]) -> str | None:
    """The script a shell or su runs from a string, or None (a script file, stdin).

    `sh -c SCRIPT`, with options anywhere before it (`bash -lc`, `sh -c -e`);
    `fish --command=SCRIPT`; `su -c SCRIPT user`, `su - user --command SCRIPT`.
    """
    if argv[0] in _SCRIPT_OPTION:
        for i, arg in enumerate(argv[1:-1], start=1):
            if arg == "--command" or (arg[:1] == "-" and arg[1:2] != "-" and arg[-1] == "c"):
                return argv[i + 1]
        return next((a[10:] for a in argv if a.startswith("--command=")), None)
    from_string = False
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name == "command" and eq:
                return value
            from_string = from_string or name == "command"
            if name in ("rcfile", "init-file") and not eq:
                i += 1
        elif arg[:1] in "-+" and len(arg) > 1:
            from_string = from_string or "c" in arg
            if "o" in arg or "O" in arg:
                i += 1  # `-o pipefail`: the option's name follows
        else:
            return arg if from_string else None
    return argv[i] if from_string and i < len(argv) else None


def _terminators(words: list[str]) -> list[int]:
    """For each index of `words`, where the next `;` or `+` is (len(words): none), so that
    nested `find -exec find -exec ...` is read in linear time."""
    found = [len(words)] * (len(words) + 1)
    for i in range(len(words) - 1, -1, -1):
        found[i] = i if words[i] in (";", "+") else found[i + 1]
    return found


def _find_exec(
    words: list[str], start: int, stop: int, terminators: list[int]
) -> list[tuple[int, int]]:
    """Where the commands of `find ... -exec cmd args ;` are (also -execdir, -ok, -okdir,
    and `+` ending them)."""
    inner: list[tuple[int, int]] = []
    i = start + 1
    while i < stop:
        if words[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = min(terminators[i + 1], stop)
            if end > i + 1:
                inner.append((i + 1, end))
            i = end
        i += 1
    return inner

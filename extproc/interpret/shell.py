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
  `nsenter`, `unshare`, `ionice`, `taskset`, `caffeinate`): the wrapper's argv is
  returned and so is the command it runs (both execute; `env -S '...'` runs the command
  line it splits);
- scripts passed as strings are read too: `sh|bash|zsh|dash|ksh|ash|mksh|fish -c '...'`,
  `su|runuser -c '...'`, `eval ...`, `ssh host ...`, `watch ...`, `find ... -exec cmd ;`;
- command substitutions `$(...)` and backticks, unquoted or inside double quotes, and
  process substitutions `<(...)`, `>(...)` are read as commands (inside single quotes
  they are text, as in sh);
- bash's brace lists and `$IFS` split words (`{rm,-rf,/}`, `rm${IFS}-rf${IFS}/`);
- a function definition `f() { ...; }` (or `function f`) is returned as the command
  `["function", "f"]` followed by its body's commands (a fork bomb is visible as such);
- redirections and their targets are not argv; output redirections' targets are
  `writes` (`> /dev/sda`); a heredoc's body is read as commands (what `sh <<EOF` would run).

What can only be known when it runs is not guessed: such a command is returned, and
marked `opaque` with why (OPAQUE_REASONS): a program that is a substitution or a variable
(`$(echo rm) -rf /`, `a=rm; $a -rf /`, `eval "$x"`), a script from a pipe, a redirection
or a process substitution (`curl ... | sh`, `source <(...)`, `cat q.sql | psql`),
another language's inline code (`python -c`, `perl -e`, `node -e`, `php -r`, awk calling
system(); the strings in the code are read as commands too), operands given at run time
(`xargs rm -rf`, `find -exec rm {} +`), scripts nested past depth 16, a function that
calls itself (the fork bomb, whatever its name). A shell with no script and no piped
stdin is a session (`kubectl exec -it pod -- sh`), not opaque. Of a chain of wrappers, at
most 16 argvs are returned, and always the innermost command. It errs on the side of
reporting: a commented-out or unreachable command is still a command here. Text that sh
itself could not parse (an unclosed quote or substitution) is split on whitespace
instead. Not followed: variables' values, aliases, functions' later calls.

The lexer is a compiled regex rather than `shlex`: shlex loses the quoting a `$(...)`
stood in (so `echo '$(rm -rf /)'` would read as rm), its comment handling swallows the
newline ending the comment (`ls # x` NL `rm -rf /` would read as one `ls`), and it cannot
tell `2>` from `2 >`. Reading a text whole costs what shlex's tokenising alone costs:
~0.25 µs a character (4 µs for `ls -la /tmp`, where shlex takes 11).

Nor is it a real grammar (tree-sitter-bash 0.25, measured on this reader's tests and the
bypass cases): its parse alone takes ~19 µs a command where this whole reading takes ~26,
a 64 KiB text 45 ms against 57, and the unwrapping (quotes, `$'...'`, wrappers, nested
scripts) would still be ours, walked node by node in Python; and it gives an ERROR tree
for what bash runs (`{rm,-rf,/}`, `a#b c`). It would cost more than it gains.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Literal, TypedDict

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
    | \\(?P<escaped>.)
    | (?P<plain>[^ \t\r\f\v\n'"\\;&|()<>`$\#]+|\$)
    """,
    re.X | re.S,
)
_DOUBLE = re.compile(
    r"""
      \\(?P<escaped>[$`"\\\n])
    | (?P<subst>\$\(|`)
    | (?P<end>")
    | (?P<plain>[^"\\$`]+|\\|\$)
    """,
    re.X,
)
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
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish"})
# Interpreters and the options whose value is code to run (python* takes -c).
_INLINE = {
    "perl": ("-e", "-E"), "ruby": ("-e",), "node": ("-e", "-p", "--eval", "--print"),
    "nodejs": ("-e", "-p", "--eval", "--print"), "bun": ("-e", "--eval"), "php": ("-r",),
    "lua": ("-e",), "Rscript": ("-e",), "tclsh": (), "pwsh": ("-c", "--command"),
}
_PYTHON = re.compile(r"(?:python|pypy)[0-9.]*")
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
# What in an awk program runs a command: system(), a pipe to or from one.
_AWK_RUNS = re.compile(r"system\s*\(|getline|\|&|\bprintf?\b[^;}\n]*\|")
_SQL_CLIENTS = frozenset({"psql", "mysql", "mariadb", "sqlite3", "duckdb", "clickhouse-client",
                          "cockroach"})
_SQL_SOURCES = ("-c", "--command", "-e", "--execute", "-q", "--query", "-f", "--file")
_STDIN_FILES = ("/dev/stdin", "/dev/fd/", "/proc/self/fd/")
# The programs `_opaque_program` looks at even when their stdin is no pipe (python* too).
_MAYBE_OPAQUE = frozenset({"source", ".", *_INLINE, *_AWKS})
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
}


class _Unbalanced(ValueError):
    """sh would refuse the text: an unclosed quote or substitution."""


OpaqueReason = Literal["computed_program", "computed_script", "inline_code", "stdin_operands",
                       "too_deep", "recursive_function"]


class Opaque(TypedDict):
    """A command whose program, script or operands are only known when it runs."""

    argv: list[str]
    why: OpaqueReason


@dataclass(slots=True)
class Reading:
    """What a command line runs: `commands` (argvs), `opaque` (the commands whose program,
    script or operands are only known when they run, `why` explained in OPAQUE_REASONS)
    and `writes` (the files its output redirections write)."""

    commands: list[list[str]] = field(default_factory=list)
    opaque: list[Opaque] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)

    def mark(self, argv: list[str], why: OpaqueReason) -> None:
        self.opaque.append({"argv": argv, "why": why})


OPAQUE_REASONS: dict[OpaqueReason, str] = {
    "computed_program": "the program is a substitution or a variable: `$(echo rm) -rf /`",
    "computed_script": "a script computed or read at run time: `source <(curl ...)`, "
                       "`bash \"$x\"`, a shell or a database client fed by a pipe, `<` or "
                       "a here-document",
    "inline_code": "another language's code: `python -c`, `perl -e`, `node -e`, `php -r`, "
                   "`awk` calling system() or a pipe",
    "stdin_operands": "operands read at run time: `xargs CMD`, `find -exec CMD {}`",
    "too_deep": f"scripts nested deeper than {_MAX_DEPTH} levels",
    "recursive_function": "a function that calls itself (the fork bomb's shape)",
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


def read(text: str, stdin: bool = False) -> Reading:
    """The commands `text` would run, those of them that are opaque, and what it writes.
    `stdin`: the text runs with a stdin nobody here reads (an SSH exec's channel, where
    `ssh host sh < script.sh` sends the script): every command of it, at any depth, is
    read as one fed by a pipe, so a shell or an interpreter without a script is opaque."""
    reading = Reading()
    _read(text, 0, reading, stdin)
    return reading


def argv_read(argv: list[str]) -> Reading:
    """`read` of an argv run without a shell (a tool's `["bash", "-lc", "..."]`, kubectl
    exec's `command`): its `commands` are the argv itself, then what it runs when it is a
    wrapper or a shell (`["sudo", "rm", ...]`, `["sh", "-c", "rm -rf /"]`). It is read as
    the command line it would be once joined with quotes, so each item stays one word
    (`["echo", "$(rm -rf /)"]` runs no rm) and argv[0] is reduced to its basename as
    `commands` does."""
    reading = read(shlex.join(argv)) if argv else Reading()
    if argv and not reading.commands:
        reading.commands.append(argv)
    return reading


def _read(text: str, depth: int, reading: Reading, session: bool = False) -> None:
    if depth > _MAX_DEPTH:
        reading.mark([text], "too_deep")
        return
    try:
        simple, substitutions = _parse(text, reading)
    except _Unbalanced:
        simple, substitutions = [(text.split(), False)], []
    defining: str | None = None  # the function whose body is being read
    braces = 0
    for words, stdin in simple:
        _expand(words, stdin or session, depth, reading, session)
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


def _parse(text: str, reading: Reading) -> tuple[list[tuple[list[str], bool]], list[str]]:
    """Simple commands (their words, and whether their stdin is a pipe or a redirection)
    and the texts of command substitutions; output redirections' targets go to `reading`."""
    tokens, substitutions = _lex(text)
    simple: list[tuple[list[str], bool]] = []
    words: list[str] = []
    redirect: str | None = None  # the operator whose target comes next
    stdin = False
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "word":
            if redirect is None:
                words.append(value)
            elif ">" in redirect and not value.isdigit() and value != "-":
                reading.writes.append(value)
            redirect = None
            continue
        if kind == "redir":
            redirect = value
            stdin = stdin or (value.lstrip("0123456789")[:1] == "<" and value[-1] != ">")
            continue
        redirect = None
        if value == "(" and i < len(tokens) and tokens[i] == ("sep", ")") and len(words) == 1:
            words.insert(0, "function")  # `name()`: a definition, its body follows
            i += 1
        if words:
            simple.append((words, stdin))
            words = []
        stdin = value in ("|", "|&")
    if words:
        simple.append((words, stdin))
    return simple, substitutions


def _lex(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Words (quotes removed) and operators, as sh tokenises; raises _Unbalanced."""
    tokens: list[tuple[str, str]] = []
    substitutions: list[str] = []
    word: list[str] | None = None
    pos, end = 0, len(text)
    while pos < end:
        m = _UNQUOTED.match(text, pos)
        if m is None:
            raise _Unbalanced(f"unclosed quote or escape at {pos}")
        kind = m.lastgroup or ""  # every alternative is a named group
        pos = m.end()
        if kind in ("blank", "sep", "redir"):
            if word is not None:
                tokens.append(("word", "".join(word)))
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
                word = []
            if kind in _AS_IS:
                word.append(m.group(kind))
            else:
                pos = _quoted_or_substituted(text, m, word, substitutions)
    if word is not None:
        tokens.append(("word", "".join(word)))
    return tokens, substitutions


_AS_IS = frozenset({"plain", "single", "escaped"})  # word parts taken as they match


def _quoted_or_substituted(text: str, m: re.Match[str], word: list[str],
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
    word.append(text[m.start():pos])
    return pos


def _double_quoted(text: str, pos: int, word: list[str], substitutions: list[str]) -> int:
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
            word.append(text[m.start():pos])
        elif kind == "escaped":
            word.append("" if m.group(kind) == "\n" else m.group(kind))
        else:
            word.append(m.group(kind))


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
                found.append(text[pos:m.start()])
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
        start = _command_start(words, start, stop, found)
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
        if "$" in name or "`" in name or name[:2] in ("<(", ">("):
            why = "computed_program"
        elif why is None and fed:
            why = "stdin_operands"
        if not inner or layers < _MAX_LAYERS:
            found.append(argv)
            layers += bool(inner)
            if why is not None:
                _mark(argv, why, depth, reading)
        if script is not None:
            _read(script, depth + 1, reading, session)
        pending.extend(reversed(inner))


def _runs(words: list[str], start: int, stop: int, argv: list[str], fed: bool, stdin: bool
          ) -> tuple[list[tuple[int, int, bool]], str | None, OpaqueReason | None]:
    """What a simple command (not `find`) runs besides itself: the words of the command
    it wraps (and whether that one's operands are fed at run time), a script it runs, and
    why it is opaque by what it is (None: it is not)."""
    name = argv[0]
    wrapper = _WRAPPERS.get(name)
    if wrapper is not None:
        begin = _operands_start(words, start, stop, wrapper)
        while name == "eval" and begin < stop and words[begin] == "eval":
            begin += 1  # `eval eval X` runs X as `eval X` does: no depth spent on it
        split = _split_string(words[start + 1:begin]) if name == "env" else None
        if wrapper.script or split is not None:
            return [], " ".join([*([split] if split is not None else []), *words[begin:stop]]), None
        return ([(begin, stop, fed or name == "xargs")] if begin < stop else []), None, None
    if name in _SHELLS or name in ("su", "runuser"):
        script = _script_operand(argv)
        why = _stdin_script(argv[1:], stdin) if script is None and name in _SHELLS else None
        return [], script, why
    if name in _MAYBE_OPAQUE or stdin or name.startswith(("python", "pypy")):
        return [], None, _opaque_program(argv, stdin)
    return [], None, None


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
    return None


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
        return "inline_code" if _AWK_RUNS.search(_code(argv)) else None
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


def _command_start(words: list[str], start: int, stop: int, found: list[list[str]]) -> int:
    """Where the program's name is, after reserved words and assignments; a function
    definition (`function f`) is recorded on the way."""
    while start < stop:
        word = words[start]
        if word == "function" and start + 1 < stop:
            found.append(["function", words[start + 1]])
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
        return brace.group(1).split(",")
    return [part for part in _IFS.split(word) if part] if "IFS" in word else [word]


def _basename(program: str) -> str:
    _, slash, tail = program.rpartition("/")
    if not slash or not tail or "$(" in program or "`" in program:
        return program
    return tail


def _operands_start(words: list[str], start: int, stop: int, wrapper: _Wrapper) -> int:
    """Where the command wrapped by `words[start]` starts: after the wrapper's options,
    assignments and operands."""
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
    return i + wrapper.operands


def _script_operand(argv: list[str]) -> str | None:
    """The script a shell or su runs from a string, or None (a script file, stdin).

    `sh -c SCRIPT`, with options anywhere before it (`bash -lc`, `sh -c -e`);
    `fish --command=SCRIPT`; `su -c SCRIPT user`, `su - user --command SCRIPT`.
    """
    if argv[0] in ("su", "runuser"):
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

"""Whether a host's shell would read past the end of a line, or rewrite it before running.

The gateway sends each decided line whole, with its Enter. A line the shell does not take
as a whole command — a trailing backslash, an open quote, a heredoc, an `if` without its
`fi`, a `|` at the end, `f()` without its body — makes it read on, and the next line,
decided alone, would run joined to it (`r\\` then `m -rf /`); bash also rewrites a line
with its history (`!!`, `^old^new`) before running it. Either way the host would run what
nobody decided, so such a line is not readable (the pack refuses it: type it whole, on
one line).

The reading errs one way only: what it calls complete, bash and dash do too (tested
against `bash -n` and `dash -n`); it may call incomplete a line they would run (a quote in
a comment counts: `shopt -u interactive_comments` makes `#` a word's character).
"""

from __future__ import annotations

import re

_OPENERS = {"if": "fi", "case": "esac", "for": "done", "while": "done", "until": "done",
            "select": "done", "{": "}", "[[": "]]"}
# Words after which the next one is a command's first word still.
_KEEP_COMMAND = {"then", "do", "else", "elif", "!", "time", "in", "function", "coproc"}
# Operators a command line cannot end with: the shell reads on for what follows.
_BINARY = {"|", "||", "&&", "|&"}
_OPERATOR = re.compile(r";;&|;;|;&|\|\||&&|\|&|&>>|&>|<<<|<<-|<<|>>|<&|>&|<>|>\||[|&;()<>]")
_WORD_END = frozenset(" \t\n|&;()<>")
_REDIRECTIONS = {"<", ">", ">>", "<<<", "<&", ">&", "<>", ">|", "&>", "&>>"}


def unreadable(line: str) -> str | None:
    """Why the host's shell would not run `line` as the whole command it reads, or None."""
    if line.lstrip(" \t").startswith("^") or "histchars" in line:
        return "bash rewrites it with its history (^old^new, histchars)"
    if _history(line):
        return "bash rewrites it with its history (! followed by a character)"
    for comments in (True, False):
        why = _Reader(line, comments).incomplete()
        if why is not None:
            return f"the shell would read on past its end ({why})"
    return None


def _history(line: str) -> bool:
    """A `!` bash's history expansion takes (outside single quotes, not escaped, followed
    by something other than a blank or `=`)."""
    quoted = escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and not quoted:
            escaped = True
        elif char == "'":
            quoted = not quoted
        elif char == "!" and not quoted and line[i + 1:i + 2] not in ("", " ", "\t", "="):
            return True
    return False


class _Reader:
    """One pass over a line: the quotes, substitutions and compound commands left open."""

    def __init__(self, line: str, comments: bool) -> None:
        self._text, self._comments = line, comments
        self._i = 0
        # Compound commands open, as the word or character that closes each ("fi", ")").
        self._open: list[str] = []
        self._command = True  # the next word is a command's first
        self._named = False  # the last word read was a command's first (`f` of `f()`)
        self._binary = False  # the last thing read is an operator that needs more
        self._body = False  # a function was named: its body must follow
        self._pattern = False  # in a case, a pattern is read up to its `)`

    def incomplete(self) -> str | None:
        try:
            self._code(None)
        except _Open as exc:
            return str(exc)
        return self._left()

    def _left(self) -> str | None:
        """What the code read so far leaves open."""
        if self._open:
            return f"{self._open[-1]!r} missing"
        if self._binary:
            return "it ends with an operator"
        if self._body:
            return "a function without its body"
        return None

    # -- code ---------------------------------------------------------------------------

    def _code(self, closer: str | None) -> None:
        """Shell code up to the `)` of `$(`, or to the end."""
        text = self._text
        while self._i < len(text):
            char = text[self._i]
            if char in " \t\n":
                self._i += 1
            elif closer and char == ")" and not self._open and not self._pattern:
                self._i += 1
                return
            elif char == "#" and self._comments:
                self._i = len(text)
            elif (match := _OPERATOR.match(text, self._i)) is not None:
                self._i = match.end()
                self._operator(match.group())
            else:
                self._word()
        if closer is not None:
            raise _Open(f"{closer!r} missing")

    def _operator(self, op: str) -> None:
        if op in ("<<", "<<-"):
            raise _Open("a heredoc")
        named, self._named = self._named, False
        if self._pattern:  # ( a | b ): a pattern's own
            if op == ")":
                self._pattern, self._command = False, True
            return
        self._binary = op in _BINARY
        if op == "(":
            self._parenthesis(named)
        elif op == ")":
            if self._open[-1:] == [")"]:
                self._open.pop()
            self._command = False
        else:
            if op in (";;", ";&", ";;&") and self._open[-1:] == ["esac"]:
                self._pattern = True
            self._command = op not in _REDIRECTIONS

    def _parenthesis(self, named: bool) -> None:
        """`(`: a function's `()` after its name, `((` arithmetic, or a subshell."""
        if named or self._body:
            self._skip_blanks()
            if self._text.startswith(")", self._i):
                self._i += 1
                self._body, self._command = True, True
                return
            self._body = False  # `function f ( ls )`: the body is a subshell
        if self._command and self._text.startswith("(", self._i):
            self._i += 1
            self._arithmetic()
            self._command = False
            return
        self._open.append(")")
        self._command = True

    def _word(self) -> None:
        start = self._i
        literal = True  # no quote, escape or substitution in it: it may be a keyword
        text = self._text
        while self._i < len(text) and text[self._i] not in _WORD_END:
            literal &= text[self._i] not in "\\'\"`$"
            self._quoted_part(text[self._i], in_double=False)
        word = text[start:self._i]
        self._binary = False
        command, self._command, self._named = self._command, False, False
        if self._pattern:
            if literal and word == "esac" and self._open[-1:] == ["esac"]:
                self._open.pop()
                self._pattern = False
            return
        if not literal:
            self._named = command
            return
        if (command or self._body) and word in _OPENERS:
            self._body = False
            self._open.append(_OPENERS[word])
            self._command = True
            if word == "case":
                self._case_word()
        elif self._body:
            pass  # `function NAME`
        elif self._open[-1:] == [word] and (command or word == "]]"):
            self._open.pop()
        elif command and word == "function":
            self._body = True
        elif command:
            self._command = word in _KEEP_COMMAND or "=" in word
            self._named = not self._command

    def _case_word(self) -> None:
        """`case WORD in`: after `in`, patterns."""
        self._skip_blanks()
        text = self._text
        while self._i < len(text) and text[self._i] not in _WORD_END:
            self._quoted_part(text[self._i], in_double=False)
        self._skip_blanks()
        end = self._i + 2
        if text[self._i:end] == "in" and (end == len(text) or text[end] in _WORD_END):
            self._i = end
            self._pattern = True

    def _skip_blanks(self) -> None:
        while self._i < len(self._text) and self._text[self._i] in " \t\n":
            self._i += 1

    # -- quotes and substitutions -------------------------------------------------------

    def _quoted_part(self, char: str, in_double: bool) -> None:
        """One character of a word, or the whole quote or substitution it starts."""
        text, i = self._text, self._i
        if char == "\\":
            if i + 1 >= len(text):
                raise _Open("a backslash at the end")
            self._i = i + 2
        elif char == "'" and not in_double:
            self._until("'", f"{char} open")
        elif char == "$" and text.startswith("$'", i) and not in_double:
            self._i += 1
            self._until("'", "$' open", escapes=True)
        elif char == '"' and not in_double:
            self._i += 1
            self._double()
        elif char == "`":
            begin = self._i + 1
            self._until("`", "` open", escapes=True)
            inner = _Reader(text[begin:self._i - 1], self._comments).incomplete()
            if inner is not None:
                raise _Open(f"in `…`: {inner}")
        elif text.startswith("$((", i):
            self._i += 3
            self._arithmetic()
        elif text.startswith("$(", i):
            self._i += 2
            self._substitution()
        elif text.startswith("${", i):
            self._i += 2
            self._braced()
        else:
            self._i += 1

    def _until(self, end: str, why: str, escapes: bool = False) -> None:
        text = self._text
        self._i += 1
        while self._i < len(text):
            if escapes and text[self._i] == "\\":
                self._i += 2
                continue
            if text[self._i] == end:
                self._i += 1
                return
            self._i += 1
        raise _Open(why)

    def _double(self) -> None:
        text = self._text
        while self._i < len(text):
            if text[self._i] == '"':
                self._i += 1
                return
            self._quoted_part(text[self._i], in_double=True)
        raise _Open('" open')

    def _braced(self) -> None:
        text = self._text
        while self._i < len(text):
            if text[self._i] == "}":
                self._i += 1
                return
            self._quoted_part(text[self._i], in_double=False)
        raise _Open("${ open")

    def _arithmetic(self) -> None:
        """Up to the `))` that ends `((` or `$((`, parentheses counted."""
        text, depth = self._text, 0
        while self._i < len(text):
            char = text[self._i]
            if char == ")" and depth == 0:
                if not text.startswith("))", self._i):
                    raise _Open("(( open")
                self._i += 2
                return
            depth += {"(": 1, ")": -1}.get(char, 0)
            self._quoted_part(char, in_double=False)
        raise _Open("(( open")

    def _substitution(self) -> None:
        """`$(…)`: code of its own, which must close before the line goes on."""
        inner = _Reader(self._text, self._comments)
        inner._i = self._i
        inner._code(")")
        why = inner._left()
        if why is not None:
            raise _Open(f"in $(…): {why}")
        self._i = inner._i


class _Open(Exception):
    """The line leaves something open: the shell would read on."""

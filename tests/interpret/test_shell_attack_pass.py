"""Lines the default pack ALLOWS over SSH (an exec and a typed line) that make the host run a
program, or write a file, that the reading does not show: bypasses of docs/shell.md's rule
"a line is allowed only when the reader can say what it will do".

Every BYPASSES case was confirmed on a real shell before it was written here: the line, as
given, run by `setpriv --reuid=65534 --regid=65534 --clear-groups -- bash -c LINE` (and
`dash -c` where the comment says so) in a fresh temp dir that was HOME and the cwd, with
stdin /dev/null, and a file `pwned` appeared there (`touch pwned` ran, a program the
reading's `commands` do not list), or `.bashrc` came to hold `touch pwned` (a state file
written without `writes` showing it). bash 5.2.15, dash 0.5.12, GNU sed/tar/coreutils,
gawk 5 and mawk, git 2.39, OpenSSH 9, vim 9, strace 6.

Each case failed when it was written (the pack allowed it, unseen); LOOK_ALIKES must stay
allowed.
"""

from __future__ import annotations

from typing import Any

import pytest

from extproc.interpret.shell import read
from extproc.policy.embedded import EmbeddedEngine
from tests.interpret.test_shell_effect_bypass import ssh
from tests.policy_corpus import policy_input

# A script the line itself writes, then runs by a name the reader does not see as a path.
ZZ = "printf '#!/bin/sh\\ntouch pwned\\n' > zz; chmod +x zz; "
AWK = "echo 'BEGIN{system(\"touch pwned\")}' > p.awk; "

BYPASSES: list[tuple[str, str]] = [
    # -- bash evaluates a literal string as arithmetic, and `a[$(cmd)]` in it runs cmd ----
    # The reader takes single-quoted text (and a literal assignment) as data, and `$((x))`
    # / `$[x]` / `(( x ))` of a name as harmless; bash expands the variable's value as an
    # expression, whose subscript's `$(...)` runs. bash -c: pwned (dash refuses `$((x))`:
    # "Illegal number").
    ("arith", "x='a[$(touch pwned)]'; echo $((x))"),
    ("arith", "x='a[$(touch pwned)]'; echo $[x]"),
    ("arith", "x='a[$(touch pwned)]'; (( x ))"),
    ("arith", "x='a[$(touch pwned)]'; [[ x -eq 0 ]]"),
    ("arith", "declare -i n; n='a[$(touch pwned)]'"),
    ("arith", "let 'a[$(touch pwned)]=1'"),
    # builtins that take a variable NAME: an array subscript in it is evaluated (bash -c: pwned)
    ("subscript", "printf -v 'a[$(touch pwned)]' %s x"),
    ("subscript", "read 'a[$(touch pwned)]' <<< x"),
    ("subscript", "test -v 'a[$(touch pwned)]'"),
    ("subscript", "[[ -v 'a[$(touch pwned)]' ]]"),
    # indirection and prompt expansion of a literal value (bash -c: pwned)
    ("expansion", "x='a[$(touch pwned)]'; echo ${!x}"),
    ("expansion", "x='$(touch pwned)'; echo ${x@P}"),
    # -- builtins that run a string or a file, not known as wrappers or state changers ----
    # `builtin` is no wrapper: its operands are data. mapfile/compgen -C run their
    # callback; `coproc NAME { ...; }` runs the group (read as a program NAME). bash -c: pwned.
    ("builtin", "builtin eval 'touch pwned'"),
    ("builtin", "echo 'touch pwned' > f; builtin source f"),
    ("builtin", "mapfile -C 'touch pwned' -c 1 <<< x"),
    ("builtin", "compgen -C 'touch pwned' x"),
    ("builtin", "coproc X { touch pwned; }; wait"),
    # -- steering variables set without `NAME=` syntax, or through a wrapper --------------
    # printf -v / read set PATH, so a bare `zz` runs ./zz (bash -c: pwned; the `read <`
    # and `env PATH=` forms also under dash -c: pwned). `env VAR=` skips _assign's check.
    ("steer", ZZ + "printf -v PATH %s .:/usr/bin:/bin; zz"),
    ("steer", ZZ + "read PATH <<< .:/usr/bin:/bin; zz"),
    ("steer", ZZ + "echo .:/usr/bin > p; read PATH < p; zz"),
    ("steer", ZZ + "env PATH=.:/usr/bin zz"),
    ("steer", "echo 'touch pwned' > f; env BASH_ENV=./f bash -c true"),
    # --rcfile's file is read by the interactive `bash -ic` (bash -c and dash -c: pwned)
    ("steer", "echo 'touch pwned' > f; bash --rcfile f -ic true"),
    # interactive: PROMPT_COMMAND set by printf -v runs at the next prompt (confirmed by
    # piping this line then `true` into `bash --norc -i` as nobody: pwned)
    ("steer", "printf -v PROMPT_COMMAND %s 'touch pwned'"),
    ("steer", "read PROMPT_COMMAND <<< 'touch pwned'"),
    # -- awk programs that run commands the _AWK_RUNS regex misses -----------------------
    # a `;` (or `}`) in the printed string stops `print[^;}\n]*\|`; -fFILE attached, gawk's
    # -E/-i and @include read a program file (bash -c with gawk: pwned; -fp.awk with mawk too)
    ("awk", "awk 'BEGIN{print \"touch pwned;\" | \"sh\"}'"),
    ("awk", AWK + "awk -fp.awk"),
    ("awk", AWK + "mawk -fp.awk"),
    ("awk", AWK + "awk -E p.awk"),
    ("awk", AWK + "gawk -i ./p.awk 'BEGIN{}'"),
    ("awk", AWK + "awk '@include \"p.awk\"'"),
    # -- GNU sed's `e` the _SED_RUNS regex misses ---------------------------------------
    # a script given as an option (`--expression=`, `-e'...'`) is skipped; an escaped
    # delimiter and the `first~step` address defeat the regex; `-f` reads a script file.
    # bash -c (GNU sed 4.9): pwned.
    ("sed", "echo x | sed --expression='1e touch pwned'"),
    ("sed", "echo x | sed -e'1e touch pwned'"),
    ("sed", "echo x | sed 's/x\\/*/touch pwned/e'"),
    ("sed", "echo x | sed '0~1e touch pwned'"),
    ("sed", "echo '1e touch pwned' > s.sed; echo x | sed -f s.sed"),
    # -- GNU long options abbreviated (getopt_long takes any unique prefix) --------------
    # bash -c: pwned (tar 1.34, coreutils split, util-linux script)
    ("abbrev", "tar -cf a.tar --checkpoint=1 --checkpoint-a=exec='touch pwned' /etc/hostname"),
    ("abbrev", "printf '#!/bin/sh\\ntouch pwned; cat\\n' > zz; chmod +x zz; "
               "tar -cf a.tar --use-compress=./zz /etc/hostname"),
    ("abbrev", "split --filte='touch pwned' /etc/hostname"),
    ("abbrev", "script -q --comm='touch pwned' /dev/null"),
    # -- short option clusters: `-4o` is `-4 -o` -----------------------------------------
    # ssh runs the ProxyCommand before failing to resolve x (bash -c: pwned)
    ("cluster", "ssh -4oProxyCommand='touch pwned' x"),
    # -- git options and config keys that run programs, not in _RUNS["git"] --------------
    # bash -c, git 2.39, no ~/.gitconfig: pwned
    ("git", "git init -q r; git clone -q -u 'touch pwned; git-upload-pack' file://$PWD/r y"),
    ("git", "git init -q r && cd r && echo a > a && git add a && git config user.email a@b.c"
            " && git config user.name a && git commit -qm a"
            " && git rebase -q -x 'touch ../pwned' --root"),
    ("git", "git init -q r && cd r && echo root > a"
            " && git grep --no-index -O'touch ../pwned;' root a"),
    ("git", "git init -q r; git init -q s; cd s; git remote add origin ../r; git config "
            "remote.origin.uploadpack 'touch ../pwned; git-upload-pack'; git fetch -q origin"),
    # -- programs that run a command from their operands or stdin, in no table ----------
    # strace's `-o |cmd`; ed/ex/vim -es run `!cmd` read from a pipe; run-parts runs every
    # program of a folder; ssh-agent runs its operand; the dynamic loader (an installed
    # path) runs a copied program. bash -c: pwned.
    ("runs", "strace -o '|touch pwned' true"),
    ("runs", "echo '!touch pwned' | ed"),
    ("runs", "echo '!touch pwned' | ex -s"),
    ("runs", "echo '!touch pwned' | vim -es"),
    ("runs", "mkdir d; printf '#!/bin/sh\\ntouch pwned\\n' > d/x; chmod +x d/x; run-parts d"),
    ("runs", ZZ + "ssh-agent ./zz"),
    ("runs", "cp /usr/bin/touch zz; /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 ./zz pwned"),
    # -- writes to a state file by programs missing from writes_of -----------------------
    # each left `touch pwned` in $HOME/.bashrc (bash -c), with no `writes` entry, so
    # ssh.state_file_write never sees it; git config --global wrote ~/.gitconfig.
    ("state-write", "find . -maxdepth 0 -fprintf .bashrc 'touch pwned\\n'"),
    ("state-write", "echo 'touch pwned' | sed -n 'w .bashrc'"),
    ("state-write", "echo 'touch pwned' | shuf -o .bashrc"),
    ("state-write", "echo 'touch pwned' > x; uniq x .bashrc"),
    ("state-write", "echo 'touch pwned' > x; iconv -o .bashrc x"),
    ("state-write", "echo 'touch pwned' > x; curl -so .bashrc file://$PWD/x"),
    ("state-write", "git config --global protocol.ext.allow always"),
]

# Files written that the reading's `writes` does not list (each created `pwned`, bash -c).
UNLISTED_WRITES: list[tuple[str, str]] = [
    ("find . -maxdepth 0 -fprint pwned", "pwned"),
    ("echo x | sed -n 'w pwned'", "pwned"),
    ("echo x | shuf -o pwned", "pwned"),
    ("echo x > x; uniq x pwned", "pwned"),
    ("echo x > x; iconv -o pwned x", "pwned"),
]

# Look-alikes checked: allowed today, and they should stay allowed.
LOOK_ALIKES: list[str] = [
    "echo $((1+2))", "printf -v y %s 1", "read -r line <<< x", "mapfile -t lines < notes",
    "test -v HOME", "builtin echo hi", "builtin cd /tmp", "compgen -c", "coproc cat notes",
    "env LANG=C ls", "bash -c ls", "awk '{print $1}' notes", "awk -F: '{print $1}' /etc/passwd",
    "sed 's/a/b/g' notes", "sed -e 's/a/b/' notes", "echo x | sed -n p",
    "tar -czf b.tgz notes", "tar -cf a.tar --checkpoint=100 notes", "split -l 10 notes",
    "ssh -4 h uptime", "ssh -v h uptime", "git config user.email a@b.c", "git log -p",
    "git grep -n TODO", "find . -name '*.py' -print", "find . -print", "cp notes notes.bak",
    "sort -o out notes", "uniq notes", "shuf notes", "strace -o trace.txt ls",
]


def _decisions(engine: EmbeddedEngine, line: str) -> dict[str, Any]:
    return {
        "ssh exec": engine.decide_now(policy_input(ssh(line))),
        "ssh line": engine.decide_now(policy_input(ssh(line, "line"))),
    }


@pytest.mark.parametrize("line", [pytest.param(line, id=f"{kind}-{i}")
                                  for i, (kind, line) in enumerate(BYPASSES)])
def test_a_confirmed_bypass_is_not_allowed_unseen(engine: EmbeddedEngine, line: str) -> None:
    """Not allowed, unless the reading now names what it runs (`builtin eval 'touch
    pwned'` is read through: the record shows the touch)."""
    seen = ["touch", "pwned"] in read(line, stdin=True).commands
    for front, decision in _decisions(engine, line).items():
        assert decision.action in ("hold", "deny") or seen, (front, decision.reasons)


@pytest.mark.parametrize(("line", "path"), UNLISTED_WRITES)
def test_a_file_written_is_in_writes(line: str, path: str) -> None:
    assert path in read(line, stdin=True).writes


@pytest.mark.parametrize("line", LOOK_ALIKES)
def test_a_look_alike_stays_allowed(engine: EmbeddedEngine, line: str) -> None:
    for front, decision in _decisions(engine, line).items():
        assert decision.action == "allow", (front, decision.reasons)

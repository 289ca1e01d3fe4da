"""What the SSH front answers of Ansible's exec requests (extproc/ssh/ansible_exec.py):
its question for the login's home, run as the account's; a program on the channel's stdin;
a fetch's checksum. The e2e test with the real tool is tests/e2e/test_ansible_e2e.py."""

from __future__ import annotations

import hashlib

import pytest

from extproc.ssh.ansible_exec import MaskedFetch, fed_program, home_probe


@pytest.mark.parametrize(("command", "runs"), [
    ("/bin/sh -c 'echo ~web-1 && sleep 0'", "/bin/sh -c 'echo ~ && sleep 0'"),
    ("/bin/bash -c 'echo ~web-1 && sleep 0'", "/bin/bash -c 'echo ~ && sleep 0'"),
    ("echo ~web-1 && sleep 0", "echo ~ && sleep 0"),
    ("echo ~web-1", "echo ~"),
])
def test_ansibles_question_for_the_logins_home_asks_for_the_accounts(command: str,
                                                                     runs: str) -> None:
    assert home_probe(command, "web-1") == runs


@pytest.mark.parametrize("command", [
    "/bin/sh -c 'echo ~root && sleep 0'", "/bin/sh -c 'echo ~web-10 && sleep 0'",
    "/bin/sh -c 'echo ~web-1/x && sleep 0'", "/bin/sh -c 'echo ~web-1 && rm -rf ~'",
    "/bin/sh -c 'echo ~web-1; id'", "echo ~web-1 ~web-1", "echo '~web-1'",
    "/bin/sh -c 'echo ~web-1", "echo ~web-1'", "ls ~web-1", "echo ~", "echo ~web-1 > f",
    "/bin/sh -c 'echo ~web-1 && sleep 0' x",
])
def test_any_other_command_is_run_as_sent(command: str) -> None:
    assert home_probe(command, "web-1") is None


def test_a_login_that_names_no_target_leaves_the_command_as_sent() -> None:
    assert home_probe("echo ~web-1", None) is None


@pytest.mark.parametrize(("command", "fed"), [
    ("/bin/sh -c '/usr/bin/python3 && sleep 0'", True),
    ("sudo -H -S -n -u root /bin/sh -c 'echo BECOME-SUCCESS-x ; /usr/bin/python3'", True),
    ("PYTHONPATH=/tmp/x /usr/bin/python3", False),
    ("curl -s x | python3", False), ("python3 x.py", False), ("sh", False),
    ("cat", False), ("python3 -c 'print(1)'", False),
])
def test_the_channel_is_read_whole_only_where_python_runs_it(command: str,
                                                             fed: bool) -> None:
    assert fed_program(command) is fed


def test_a_fetchs_stat_gives_the_masked_copys_checksum() -> None:
    host, masked = hashlib.sha1(b"k=s3cr3t").hexdigest(), hashlib.sha1(b"k=******").hexdigest()
    stat = f'{{"stat": {{"exists": true, "checksum": "{host}"}}}}'.encode()
    fetch = MaskedFetch(host, masked, "tollgate: masks secrets")
    assert fetch.answer(stat) == stat.replace(host.encode(), masked.encode())
    assert MaskedFetch(None, None, "refused").answer(stat) == stat

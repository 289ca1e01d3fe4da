"""Ansible through the SSH front with its defaults: ansible-playbook (a real subprocess)
through Envoy to a real OpenSSH host, over each connection Ansible offers: OpenSSH's
client (the `ssh` plugin, with its ControlMaster and ControlPersist, logged in with the
certificate `tollgate ssh login` issues), with pipelining off (the module uploaded over
SFTP, then run) and on (the module's payload on the command's stdin), and paramiko
(password: the token). No `ansible_remote_tmp`: Ansible asks for the home of the login
(`echo ~web-1`), makes its temporary folder there (the test account's home is
/var/lib/tollgate-ssh) and runs each module, judged by the payload (extproc/ssh/
ansible_exec.py, uploads.py, extproc/interpret/ansible.py) with the default pack.

One playbook per connection: ping, command, shell, copy and template run; a fetch of a
file holding a secret comes back masked, its checksum the masked copy's, with a line
saying so; a task with `become` is held for group ops (sudo), and denied it fails with the
approver's reason and the rule's. One also has a service module, held, then run once
approved; another a fetch of a binary file the policy would mask, `user` and a removal of
/etc, each refused saying why. Ansible's home, local temp, control sockets and config are
the test's own (tmp_path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import Held, api
from tests.e2e.test_ssh_e2e import AGENT, LOGIN, OPS, ssh_login, web
from tests.support.gateway import Gateway, module_gateway
from tests.support.ssh_certificates import write_key
from tests.support.sshd import Sshd

ANSIBLE = Path(sys.executable).with_name("ansible-playbook")
SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
MASKED = "AWS_SECRET_ACCESS_KEY=" + "*" * 40 + "\n"
# connection plugin, pipelining
MODES = {"openssh": ("ssh", False), "openssh-pipelining": ("ssh", True),
         "paramiko": ("paramiko", False)}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    """The gateway, with a user CA for the OpenSSH client's certificate."""
    ca = tmp_path_factory.mktemp("ssh-ca") / "user_ca"
    write_key(ca)
    with module_gateway(tmp_path_factory, otlp, "ansible", targets=[web(host)],
                        ssh={"user_ca_key_file": str(ca)},
                        settings={"approvals": {"max_hold_seconds": 60}}) as running:
        yield running


@pytest.fixture(scope="module")
def certificate(gw: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The key `tollgate ssh login` certified for the agent's token (its certificate and
    the gateway's pinned host key beside it)."""
    home = tmp_path_factory.mktemp("ssh-login")
    ssh_login(gw, home)
    return home / "id_ed25519"


def playbook(gw: Gateway, tmp_path: Path, tasks: list[dict[str, Any]], mode: str,
             key: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`tasks` run by ansible-playbook over `mode`'s connection, with Ansible's defaults
    but for what keeps its files in `tmp_path`; an OpenSSH master it left running
    (ControlPersist) is stopped afterwards."""
    assert gw.ports.ssh is not None
    plugin, pipelining = MODES[mode]
    login = (f"ansible_password={AGENT}" if plugin == "paramiko" else
             f"ansible_ssh_private_key_file={key} ansible_ssh_common_args='-o "
             f"UserKnownHostsFile={key}-known_hosts -o IdentitiesOnly=yes'")
    (tmp_path / "inventory.ini").write_text(
        f"web ansible_host=127.0.0.1 ansible_port={gw.ports.ssh} ansible_user={LOGIN} "
        f"ansible_connection={plugin} ansible_python_interpreter=/usr/bin/python3 {login}\n")
    (tmp_path / "play.yml").write_text(json.dumps(
        [{"hosts": "web", "gather_facts": False, "tasks": tasks}]))
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    sockets = tmp_path / "cp"
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(sockets),
           "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_PIPELINING": str(pipelining),
           "ANSIBLE_PARAMIKO_LOOK_FOR_KEYS": "False",
           "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_DEPRECATION_WARNINGS": "False"}
    try:
        return subprocess.run([str(ANSIBLE), "-i", str(tmp_path / "inventory.ini"),
                               str(tmp_path / "play.yml")], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    finally:
        for socket in sockets.glob("*") if sockets.exists() else ():
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={socket}", "-O",
                            "exit", "web"], capture_output=True, timeout=10, check=False)


def exec_records(gw: Gateway) -> list[dict[str, Any]]:
    """The exchanges' records of exec requests (not a held one's decision record)."""
    return [r for r in gw.records("exchange") if r["request"]["method"] == "EXEC"]


def decide_when_held(gw: Gateway, held: Held[Any], what: str, verdict: str,
                     reason: str) -> None:
    """Wait for the pending approval whose request names `what`; `verdict` it (approve,
    deny) as ops."""
    found: list[dict[str, Any]] = []

    def pending() -> bool:
        if held.answered:
            done = held.result()
            raise AssertionError(f"the playbook ended before {what} was decided:\n"
                                 f"{done.stdout}{done.stderr}")
        _, answer = api(gw, "GET", "/approvals?status=pending", OPS)
        found[:] = [a for a in answer["approvals"] if what in json.dumps(a)]
        return bool(found)

    stack.wait_until(pending, 60, f"the approval of {what}")
    status, _ = api(gw, "POST", f"/approvals/{found[0]['id']}/{verdict}", OPS,
                    {"reason": reason})
    assert status == 200


# A service module waits for group ops (ssh.ansible_privileged_module): the task blocks in
# the playbook until approved, then the module runs (systemd is absent on the test host:
# the module's own failure is what comes back, after the approval).
SERVICE = {"name": "service", "ansible.builtin.service": {"name": "tollgate-nothing",
                                                          "state": "started"},
           "ignore_errors": True}


def refused(binary: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Tasks refused whatever the connection, saying why: in one playbook only (the one
    whose modules are read from the command's stdin), as each task costs a second or so.
    `binary`: a file holding a secret, which cannot be served masked."""
    return [
        {"name": "binary", "ansible.builtin.fetch": {
            "src": str(binary), "dest": str(tmp_path / "got.bin"), "flat": True},
         "ignore_errors": True},
        {"name": "refused", "ansible.builtin.user": {"name": "intruder"},
         "ignore_errors": True},
        {"name": "destroys", "ansible.builtin.file": {"path": "/etc", "state": "absent"},
         "ignore_errors": True},
    ]


@pytest.mark.parametrize("mode", MODES)
def test_ansible_runs_with_its_defaults(gw: Gateway, host: Sshd, tmp_path: Path, mode: str,
                                        request: pytest.FixtureRequest) -> None:
    checks_refusals, approves = mode == "openssh-pipelining", mode == "paramiko"
    key = None if mode == "paramiko" else request.getfixturevalue("certificate")
    here = host.home / mode
    here.mkdir()
    os.chown(here, host.home.stat().st_uid, host.home.stat().st_gid)
    (tmp_path / "motd.j2").write_text("hello {{ who }}\n")
    secret = host.put(f"{mode}.env", f"name=web\n{SECRET}".encode())
    binary = host.put(f"{mode}.bin", f"\0{SECRET}".encode()) if checks_refusals else None
    started = len(exec_records(gw))
    held = Held(lambda: playbook(gw, tmp_path, [
        {"ansible.builtin.ping": {}},
        {"ansible.builtin.command": f"touch {here}/by-command"},
        {"ansible.builtin.shell": f"echo shell > {here}/by-shell"},
        {"ansible.builtin.copy": {"content": "copied\n", "dest": f"{here}/copied.txt"}},
        {"ansible.builtin.template": {"src": str(tmp_path / "motd.j2"),
                                      "dest": f"{here}/motd"}, "vars": {"who": "web"}},
        {"ansible.builtin.fetch": {"src": str(secret), "dest": str(tmp_path / "got.env"),
                                   "flat": True}},
        *(refused(binary, tmp_path) if binary else []),
        *([SERVICE] if approves else []),
        {"name": "as root", "ansible.builtin.command": "id -u", "become": True,
         "ignore_errors": True},
    ], mode, key))
    if approves:
        decide_when_held(gw, held, "ansible.builtin.service", "approve", "change window")
    decide_when_held(gw, held, "sudo", "deny", "no root for agents")
    done = held.result(timeout=90)
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    ignored = 1 + 3 * checks_refusals + approves
    assert f"ok={6 + ignored}" in done.stdout and f"ignored={ignored}" in done.stdout, shown
    assert (here / "by-command").exists()
    assert (here / "by-shell").read_text() == "shell\n"
    assert (here / "copied.txt").read_text() == "copied\n"
    assert (here / "motd").read_text() == "hello web\n"
    # fetch: the masked copy, consistent with the checksum Ansible was given; said so.
    assert (tmp_path / "got.env").read_text() == f"name=web\n{MASKED}"
    assert "checksum mismatch" not in shown
    assert (f"tollgate: masks secrets in {secret} when it is downloaded: the copy fetched "
            "through tollgate has them as `*`, and the checksum given is that copy's") in shown
    if binary:
        assert not (tmp_path / "got.bin").exists()
        assert (f"Ansible's fetch of {binary} is refused: the policy masks what this host "
                "sends, and this file cannot be served masked (binary") in shown
        assert ("Ansible module ansible.builtin.user creates, changes or removes an account"
                in shown)
        assert "Ansible module ansible.builtin.file removes /etc: a system path" in shown
    # become: held for ops, then denied, the approver's reason and the rule's shown.
    assert "was denied by olga: no root for agents (privileged command: sudo" in shown
    # Nothing else waited for anyone: every line Ansible sends is read.
    assert shown.count("tollgate: waiting up to") <= 1 + approves, shown
    records = exec_records(gw)[started:]
    probes = [r for r in records if r["outcome"]["detail"].startswith("ran as ")]
    assert probes and all("~web-1 is the home of the host's account" in r["outcome"]["detail"]
                          for r in probes)
    modules = {m["module"] for r in records for m in r["meaning"]["ssh"]["ansible"]}
    assert {"ansible.builtin.ping", "ansible.builtin.command", "ansible.builtin.copy",
            "ansible.builtin.stat"} <= modules, modules
    # Pipelining: each module read from the command's stdin; else from the uploaded file.
    paths = {u["path"] for r in records for u in r["meaning"]["ssh"]["uploads"]}
    assert (paths == {"-"}) == MODES[mode][1], paths
    _, pending = api(gw, "GET", "/approvals?status=pending", OPS)
    assert pending["approvals"] == []
    if approves:  # run once approved
        (service,) = [r for r in records if any(
            m["module"] == "ansible.builtin.service" for m in r["meaning"]["ssh"]["ansible"])]
        assert service["outcome"]["action"] == "allow"

"""Ansible through the SSH front: ansible-playbook (a real subprocess, paramiko's
connection) through Envoy to a real OpenSSH host, each module judged by the payload it
uploaded over SFTP (extproc/ssh/uploads.py, extproc/interpret/ansible.py) with the default
pack: ping, command, shell, copy and template run; a module the pack refuses fails saying
why; a module held waits for ops, then runs; a fetch of a file tollgate masks says so.

Ansible's home, local temp and config are the test's own (tmp_path); nothing else on the
machine changes. One playbook carries the tasks that need no one (ansible starts in ~1 s).
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
from tests.e2e.test_ssh_e2e import AGENT, LOGIN, OPS, web
from tests.support.gateway import Gateway, module_gateway
from tests.support.sshd import Sshd

ANSIBLE = Path(sys.executable).with_name("ansible-playbook")
SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "ansible", targets=[web(host)], ssh={},
                        settings={"approvals": {"max_hold_seconds": 60}}) as running:
        yield running


def playbook(gw: Gateway, host: Sshd, tmp_path: Path, tasks: list[dict[str, Any]],
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`tasks` run by ansible-playbook on the target, its every file in `tmp_path`; its
    temporary files on the host in the test host's folder (the account's home is a system
    path, /var/lib/tollgate-ssh, where the pack refuses uploads)."""
    assert gw.ports.ssh is not None
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    (tmp_path / "inventory.ini").write_text(
        f"web ansible_host=127.0.0.1 ansible_port={gw.ports.ssh} ansible_user={LOGIN} "
        f"ansible_password={AGENT} ansible_connection=paramiko "
        "ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_remote_tmp={host.home}/.ansible/tmp\n")
    (tmp_path / "play.yml").write_text(json.dumps(
        [{"hosts": "web", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_PARAMIKO_LOOK_FOR_KEYS": "False",
           "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    return subprocess.run([str(ANSIBLE), "-i", str(tmp_path / "inventory.ini"),
                           str(tmp_path / "play.yml")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def exec_records(gw: Gateway) -> list[dict[str, Any]]:
    """The exchanges' records of exec requests (not a held one's decision record)."""
    return [r for r in gw.records("exchange") if r["request"]["method"] == "EXEC"]


def test_modules_run_judged_by_what_they_uploaded(gw: Gateway, host: Sshd,
                                                  tmp_path: Path) -> None:
    (tmp_path / "motd.j2").write_text("hello {{ who }}\n")
    home = host.home
    done = playbook(gw, host, tmp_path, [
        {"ansible.builtin.ping": {}},
        {"ansible.builtin.command": f"touch {home}/by-command"},
        {"ansible.builtin.shell": f"echo shell > {home}/by-shell"},
        {"ansible.builtin.copy": {"content": "copied\n", "dest": f"{home}/copied.txt"}},
        {"ansible.builtin.template": {"src": str(tmp_path / "motd.j2"),
                                      "dest": f"{home}/motd"}, "vars": {"who": "web"}},
        {"name": "refused", "ansible.builtin.user": {"name": "intruder"},
         "ignore_errors": True},
        {"name": "destroys", "ansible.builtin.file": {"path": "/etc", "state": "absent"},
         "ignore_errors": True},
    ])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok=7" in done.stdout and "ignored=2" in done.stdout, done.stdout
    assert (home / "by-command").exists()
    assert (home / "by-shell").read_text() == "shell\n"
    assert (home / "copied.txt").read_text() == "copied\n"
    assert (home / "motd").read_text() == "hello web\n"
    assert ("Ansible module ansible.builtin.user creates, changes or removes an account"
            in done.stdout)
    assert "Ansible module ansible.builtin.file removes /etc: a system path" in done.stdout
    modules = [m["module"] for r in exec_records(gw)
               for m in r["meaning"]["ssh"]["ansible"]]
    assert {"ansible.builtin.ping", "ansible.builtin.command", "ansible.builtin.copy",
            "ansible.builtin.user", "ansible.builtin.file"} <= set(modules), modules
    shells = [c for r in exec_records(gw) for c in r["meaning"]["ssh"]["commands"]
              if c[:1] == ["echo"] and c[1:] == ["shell"]]
    assert shells, "the shell module's command line was read as a command"


def test_a_held_module_runs_once_ops_approve(gw: Gateway, host: Sshd, tmp_path: Path) -> None:
    """A service module waits for group ops (ssh.ansible_privileged_module): the task
    blocks in the playbook until approved, then the module runs (systemd is absent on the
    test host: the module's own failure is what comes back, after the approval)."""
    held = Held(lambda: playbook(gw, host, tmp_path, [
        {"ansible.builtin.service": {"name": "tollgate-nothing", "state": "started"},
         "ignore_errors": True}]))
    found: list[dict[str, Any]] = []

    def pending() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", OPS)
        found[:] = [a for a in answer["approvals"]
                    if "ansible.builtin.service" in json.dumps(a)]
        return bool(found)

    stack.wait_until(pending, 60, "the service module's approval")
    status, _ = api(gw, "POST", f"/approvals/{found[0]['id']}/approve", OPS,
                    {"reason": "ansible change window"})
    assert status == 200
    done = held.result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ignored=1" in done.stdout and "waiting up to" not in done.stdout
    (record,) = [r for r in exec_records(gw) if any(
        m["module"] == "ansible.builtin.service" for m in r["meaning"]["ssh"]["ansible"])]
    assert record["outcome"]["action"] == "allow"  # once approved


def test_a_fetch_of_a_masked_file_says_it_was_masked(gw: Gateway, host: Sshd,
                                                     tmp_path: Path) -> None:
    source = host.put("app.env", f"name=web\n{SECRET}".encode())
    done = playbook(gw, host, tmp_path, [
        {"ansible.builtin.fetch": {"src": str(source), "dest": str(tmp_path / "got"),
                                   "flat": True}, "ignore_errors": True}])
    assert "ignored=1" in done.stdout, done.stdout + done.stderr
    assert "checksum mismatch" in done.stdout
    assert f"tollgate: masks secrets in {source} when it is downloaded" in (
        done.stdout + done.stderr)

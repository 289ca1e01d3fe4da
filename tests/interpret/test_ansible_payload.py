"""The AnsiballZ reader (extproc/interpret/ansible.py): a real ansible-core payload is read
for its module and arguments, and any byte of it changed makes it unreadable."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from extproc.interpret.ansible import read_upload
from extproc.interpret.shell import read
from extproc.interpret.ssh import run_stdin, run_uploads

ANSIBLE = Path(sys.executable).with_name("ansible")


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A `copy`-less module payload as ansible-core 2.19 writes it (comments stripped)."""
    tmp = tmp_path_factory.mktemp("ansible")
    env = {**os.environ, "ANSIBLE_HOME": str(tmp / "home"), "ANSIBLE_LOCAL_TEMP": str(tmp / "l"),
           "ANSIBLE_REMOTE_TEMP": str(tmp / "r"), "ANSIBLE_KEEP_REMOTE_FILES": "1"}
    subprocess.run([str(ANSIBLE), "localhost", "-c", "local", "-m", "ansible.builtin.command",
                    "-a", "touch /tmp/never-run-here", "-C",
                    "-e", f"ansible_python_interpreter={sys.executable}"],
                   env=env, cwd=tmp, check=True, capture_output=True, timeout=60)
    (found,) = (tmp / "r").rglob("AnsiballZ_command.py")
    return found.read_bytes()


@pytest.mark.slow
def test_a_payload_is_read_for_its_module_and_arguments(payload: bytes) -> None:
    upload = read_upload(payload)
    assert upload["kind"] == "ansible", upload
    assert upload["module"] == "ansible.builtin.command"
    assert upload["args"]["_raw_params"] == "touch /tmp/never-run-here"
    reading = read("/bin/sh -c '/usr/bin/python3 /h/AnsiballZ_command.py && sleep 0'")
    ran = run_uploads(reading, {"/h/AnsiballZ_command.py": upload}, "/h")
    assert [u["path"] for u in ran] == ["/h/AnsiballZ_command.py"]
    assert ["touch", "/tmp/never-run-here"] in reading.commands


PIPELINED = ["/bin/sh -c '/usr/bin/python3 && sleep 0'", "python3 -u",
             "sudo -H -S -n -u root /bin/sh -c 'echo BECOME-SUCCESS-x ; /usr/bin/python3'"]


@pytest.mark.slow
def test_a_payload_on_stdin_is_read_when_python_runs_it_alone(payload: bytes) -> None:
    """Pipelining: the payload is the program of the one Python the channel feeds."""
    upload = read_upload(payload)
    for command in PIPELINED:
        reading = read(command, stdin=True)
        assert [u["path"] for u in run_stdin(reading, upload, command)] == ["-"]
        assert reading.opaque == [], command
        assert ["touch", "/tmp/never-run-here"] in reading.commands
    changed = read_upload(payload.replace(b"import os", b"import os;os.system('id')", 1))
    reading = read(PIPELINED[0], stdin=True)
    run_stdin(reading, changed, PIPELINED[0])
    assert reading.opaque == [{"argv": ["python3"], "why": "unread_upload"}]


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    "curl -s x | python3", "cat | python3", "python3 < f", "python3; python3",
    "python3 -i", "python3 -X dev", "python3 x.py", "python3 -", "sh",
])
def test_stdin_is_no_program_where_python_does_not_run_it_alone(payload: bytes,
                                                                command: str) -> None:
    reading = read(command, stdin=True)
    before = [dict(o) for o in reading.opaque]
    assert run_stdin(reading, read_upload(payload), command) == []
    assert reading.opaque == before


def _rezip(payload: bytes, change: bytes) -> bytes:
    text = payload.decode()
    head, _, rest = text.partition("zip_data='")
    data, _, tail = rest.partition("'")
    old = zipfile.ZipFile(io.BytesIO(base64.b64decode(data)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as new:
        for member in old.infolist():
            content = old.read(member)
            if member.filename == "ansible/modules/command.py":
                content += change
            new.writestr(member, content)
    return f"{head}zip_data='{base64.b64encode(out.getvalue()).decode()}'{tail}".encode()


@pytest.mark.parametrize("tamper", [
    lambda p: p.replace(b"import os", b"import os;os.system('id')", 1),
    lambda p: _rezip(p, b"\nimport os; os.system('rm -rf ~')\n"),
    lambda p: p.replace(b"extensions={}", b"extensions={'coverage': {}}"),
    lambda p: p.replace(b"#!", b"#!/bin/sh\n#", 1),
    lambda p: p.replace(b"rlimit_nofile=0", b"rlimit_nofile=__import__('os').getpid()"),
], ids=["wrapper", "module", "extensions", "shebang", "not-a-literal"])
def test_a_changed_payload_is_unreadable(payload: bytes, tamper: object) -> None:
    changed = tamper(payload)  # type: ignore[operator]
    assert changed != payload
    upload = read_upload(changed)
    assert upload["kind"] == "unreadable", upload
    reading = read("/usr/bin/python3 /h/AnsiballZ_command.py")
    run_uploads(reading, {"/h/AnsiballZ_command.py": upload}, "/h")
    assert reading.opaque == [{"argv": ["python3", "/h/AnsiballZ_command.py"],
                               "why": "unread_upload"}]
    assert json.dumps(upload)  # the record can carry it

"""What an SSH request means: `input.ssh`, read from what the SSH front saw.

The front (extproc/ssh/) turns each thing an agent asks of a host — a command to run
(`exec`), an interactive shell, a line typed into it, a file operation of SFTP, a
forwarding — into a request whose body names it; this reads that body into the policy's
`input.ssh`: the host and account it would act as, and for a command line what the shell
reader makes of it (every argv, wrappers and nested scripts unwrapped; what only running
it can tell, `opaque`; the files its redirections write). The reader is the one tool calls
and `kubectl exec` are judged by, so a command is judged the same wherever it comes from.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any

from extproc.codecs.message import Request
from extproc.config import Target
from extproc.interpret import shell as shell_reader
from extproc.interpret.base import Plain

# What the front may ask about, as input.ssh.request.
REQUESTS = frozenset({"exec", "shell", "line", "sftp", "forward", "subsystem"})


class Ssh(Plain):
    """input.ssh for one ssh target (its host and account are fixed per target)."""

    key = "ssh"

    def __init__(self, target: Target) -> None:
        settings = target.ssh
        assert settings is not None
        host, port = settings.address
        self._static = {"target": target.name, "host": host, "port": port,
                        "user": settings.user}

    def request(self, request: Request) -> dict[str, Any]:
        body = request["body"] if isinstance(request["body"], dict) else {}
        kind = body.get("request")
        if kind not in REQUESTS:
            raise ValueError(f"not an SSH request: {kind!r}")
        command = body.get("command")
        # An exec's channel is its commands' stdin, which tollgate passes unread: a shell
        # or interpreter fed from it (`ssh host sh < script.sh`) runs a script nobody saw.
        reading = (shell_reader.read(command, stdin=kind == "exec",
                                     interactive=kind == "line")
                   if isinstance(command, str) else shell_reader.Reading())
        uploads, fed = body.get("uploads"), body.get("stdin")
        plain = isinstance(command, str) and not loads_other_code(command)
        ran = (run_uploads(reading, uploads, body.get("cwd"))
               if plain and isinstance(uploads, dict) and uploads else [])
        if plain and isinstance(fed, dict) and isinstance(command, str):
            ran += run_stdin(reading, fed, command)
        return {
            **self._static,
            "request": kind,
            "session_id": request["headers"].get("x-session-id"),
            "pty": bool(body.get("pty")),
            "command": command if isinstance(command, str) else None,
            "argv": reading.commands[0] if reading.commands else [],
            "commands": reading.commands,
            "opaque": reading.opaque,
            "writes": reading.writes,
            "overwrites": reading.overwrites,
            "ansible": [{**{k: v for k, v in u.items() if k in _ANSIBLE_KEYS},
                         "paths": module_paths(u, body.get("cwd"))}
                        for u in ran if u.get("kind") == "ansible"],
            "uploads": [{"path": u["path"], "kind": u.get("kind"), "sha256": u.get("sha256"),
                         **({"why": u["why"]} if "why" in u else {})} for u in ran],
            "readable": body.get("readable", True) is not False,
            "sftp": body.get("sftp"),
            "forward": body.get("forward"),
            "subsystem": body.get("subsystem"),
        }

    @staticmethod
    def attributes(meaning: dict[str, Any], _request: Request | None) -> dict[str, Any]:
        found = {"tollgate.ssh.request": meaning["request"]}
        if meaning["argv"]:
            found["tollgate.ssh.program"] = meaning["argv"][0]
        if meaning["sftp"]:
            found["tollgate.ssh.sftp.operation"] = meaning["sftp"].get("operation")
        return found


# What input.ssh.ansible keeps of a module an exec runs.
_ANSIBLE_KEYS = ("module", "args", "path", "check_mode")
# Python's options that change nothing of what a script runs; any other (`-m`, `-c`, `-X`
# dev, `-W`...) leaves the command as the shell reader read it.
_PYTHON_OPTIONS = frozenset({"-B", "-E", "-I", "-s", "-S", "-u", "-O", "-OO", "-q", "-b"})
_PYTHON = re.compile(r"(?:python|pypy)[0-9.]*")
_SHELL_OPTIONS = frozenset({"-e", "-u", "-x", "-eu", "-ex", "-eux", "-xe"})
_SHELLS = frozenset({"sh", "bash", "dash"})
# A variable that changes what Python loads (PYTHONPATH, PYTHONSTARTUP, ...), or a shell's
# startup file: set anywhere in the command, the file is not what runs alone.
_LOADERS = re.compile(r"\b(?:PYTHON[A-Z_]*|BASH_ENV|ENV|LD_PRELOAD|LD_LIBRARY_PATH)=")


def run_uploads(reading: shell_reader.Reading, uploads: Mapping[str, Any],
                cwd: Any) -> list[dict[str, Any]]:
    """The files of `uploads` (path as the host resolves it -> what the file is,
    ansible.read_upload's, as the SSH front remembers it from this session's SFTP uploads)
    that a command of `reading` runs, by an interpreter (`python3 FILE`, `sh FILE`,
    `. FILE`) or as its own program (`/path/FILE`); `reading` is completed with what each
    says: an opaque entry running it is replaced by the file's commands (a shell script's
    lines, an Ansible `command`/`shell` module's command line), one that cannot be read
    stays (or is added) opaque, `unread_upload`. Returned: each file run, its `path` added."""
    ran: dict[str, dict[str, Any]] = {}
    read: dict[tuple[str, str], bool] = {}  # (runner, path) -> its reading completed
    here = cwd if isinstance(cwd, str) and cwd.startswith("/") else None
    resolved: list[shell_reader.Opaque] = []
    # Opaque entries first: one the reader gave (`script_file`) says `unread_upload` when
    # the file cannot be read, rather than a second entry beside it.
    for argv, opaque in [*((o["argv"], o) for o in reading.opaque),
                         *((c, None) for c in reading.commands)]:
        path = _file_run(argv, here)
        upload = uploads.get(path) if path is not None else None
        if path is None or not isinstance(upload, dict):
            continue
        ran.setdefault(path, {**upload, "path": path})
        key = (_runner(argv[0]), path)
        if key not in read:
            read[key] = _complete(reading, upload, key[0])
            if not read[key]:
                if opaque is None:
                    reading.mark(argv, "unread_upload")
                else:
                    opaque["why"] = "unread_upload"
        if read[key] and opaque is not None:
            resolved.append(opaque)
    if resolved:
        reading.opaque[:] = [o for o in reading.opaque if not any(o is r for r in resolved)]
    return list(ran.values())


def run_stdin(reading: shell_reader.Reading, fed: Mapping[str, Any],
              command: str) -> list[dict[str, Any]]:
    """What the channel's stdin sent, read whole before the decision (`fed`, as
    ansible.read_upload reads a file), when `command` runs it as the program of a Python
    interpreter (Ansible's pipelining: `/bin/sh -c '/usr/bin/python3 && sleep 0'`, the
    module's payload on stdin): `reading` completed as for an uploaded file run, its path
    `-`. Returned: that file, or nothing when no such interpreter reads it."""
    fed_to = stdin_program(reading, command)
    if fed_to is None:
        return []
    if _complete(reading, fed, "python"):
        reading.opaque[:] = [o for o in reading.opaque if o is not fed_to]
    else:
        fed_to["why"] = "unread_upload"
    return [{**fed, "path": "-"}]


def stdin_program(reading: shell_reader.Reading, command: str) -> shell_reader.Opaque | None:
    """The opaque entry of `reading` (`command` read with the channel as its stdin) that
    is a Python interpreter running what the channel sends as its program, when it is
    the only command the channel feeds (read again without it: the one entry that
    goes); None otherwise (a pipe or a redirection feeds it, a second command shares
    the channel, an option does more than Python's harmless ones)."""
    unfed = [o["argv"] for o in shell_reader.read(command).opaque]
    fed = []
    for entry in reading.opaque:
        if entry["argv"] in unfed:
            unfed.remove(entry["argv"])
        else:
            fed.append(entry)
    if len(fed) != 1 or fed[0]["why"] != "computed_script":
        return None
    name, *options = fed[0]["argv"]
    if not _PYTHON.fullmatch(name) or any(o not in _PYTHON_OPTIONS for o in options):
        return None
    return fed[0]


def _runner(program: str) -> str:
    """What runs a file: `python`, `shell` (sh, bash, dash, `.`, `source`) or `itself`."""
    if "/" in program:
        return "itself"
    return "python" if _PYTHON.fullmatch(program) else "shell"


def _complete(reading: shell_reader.Reading, upload: Mapping[str, Any], runner: str) -> bool:
    """Add what `upload`, run by `runner`, runs to `reading`; False when it cannot be read
    (a payload given to a shell, a script given to Python, a file tollgate cannot read)."""
    kind = upload.get("kind")
    if kind == "shell" and runner in ("shell", "itself"):
        _merge(reading, shell_reader.read(str(upload.get("text", "")), stdin=True))
        return True
    if kind == "ansible" and runner in ("python", "itself"):
        inner = _module_reading(upload)
        if inner is not None:
            _merge(reading, inner)
        return True
    return False


def _module_reading(upload: Mapping[str, Any]) -> shell_reader.Reading | None:
    """The commands an Ansible module runs when that is its point: `command` and `shell`
    (ansible.builtin.shell is the command module with `_uses_shell`, kept in its args)."""
    if upload.get("module") != "ansible.builtin.command":
        return None
    args = upload.get("args") or {}
    argv = args.get("argv")
    raw = args.get("_raw_params") or args.get("cmd")
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        text = shlex.join(argv)
    elif isinstance(raw, str):
        text = raw if args.get("_uses_shell") else shlex.join(_split(raw))
    else:
        return shell_reader.Reading(opaque=[{"argv": ["command"], "why": "computed_script"}])
    chdir = args.get("chdir")
    if isinstance(chdir, str) and chdir:
        text = f"cd {shlex.quote(chdir)} && {text}"
    executable = args.get("executable")
    if args.get("_uses_shell") and isinstance(executable, str) and executable:
        text = f"{shlex.quote(executable)} -c {shlex.quote(text)}"
    return shell_reader.read(text, stdin=args.get("stdin") is not None)


def _split(raw: str) -> list[str]:
    """The command module's split of a command line without a shell (shlex's)."""
    try:
        return shlex.split(raw)
    except ValueError:
        return raw.split()


def _merge(reading: shell_reader.Reading, other: shell_reader.Reading) -> None:
    reading.commands.extend(other.commands)
    reading.opaque.extend(other.opaque)
    reading.writes.extend(other.writes)
    reading.overwrites.extend(other.overwrites)


def _file_run(argv: list[str], here: str | None) -> str | None:
    """The path of the file `argv` runs (interpreter and script, or a path as its
    program), resolved as the host would from `here`; None for any other shape."""
    name, args = argv[0], argv[1:]
    if "/" in name:
        script = name
    elif _PYTHON.fullmatch(name):
        operands = [a for a in args if a not in _PYTHON_OPTIONS]
        if not operands or operands[0].startswith("-") or any(
                a.startswith("-") for a in args[:args.index(operands[0])]
                if a not in _PYTHON_OPTIONS):
            return None
        script = operands[0]
    elif name in _SHELLS:
        operands = [a for a in args if a not in _SHELL_OPTIONS]
        if not operands or operands[0].startswith(("-", "+")):
            return None
        script = operands[0]
    elif name in (".", "source"):
        script = args[0] if args else ""
    else:
        return None
    if not script or "$" in script or "`" in script or script.startswith("~"):
        return None
    if not script.startswith("/"):
        if here is None:
            return None
        script = posixpath.join(here, script)
    return posixpath.normpath(script)


def loads_other_code(command: str) -> bool:
    """Whether `command` sets what changes the code an interpreter loads beside a file
    (PYTHONPATH=, BASH_ENV=, LD_PRELOAD=, ...): the front then resolves no upload."""
    return _LOADERS.search(command) is not None


# The files an ansible-core module acts on, by its arguments: the argument names (the first
# given is used, as the module's aliases are) and what it does to the file.
_MODULE_PATHS: dict[str, tuple[tuple[str, ...], str]] = {
    "copy": (("dest",), "write"),
    "lineinfile": (("path", "dest", "destfile", "name"), "write"),
    "blockinfile": (("path", "dest", "destfile", "name"), "write"),
    "replace": (("path", "dest", "destfile", "name"), "write"),
    "unarchive": (("dest",), "write"),
    "get_url": (("dest",), "write"),
    "assemble": (("dest",), "write"),
    "uri": (("dest",), "write"),
    "git": (("dest",), "write"),
    "subversion": (("dest",), "write"),
    "slurp": (("src", "path"), "read"),
}


def module_paths(upload: Mapping[str, Any], cwd: Any) -> list[dict[str, str]]:
    """The files a module acts on, absolute (`~/x` and `x` from `cwd`, the account's home:
    where the SFTP session starts), each with `access`: `read` (its content returned),
    `write` (created, changed, its attributes set) or `remove`."""
    name = str(upload.get("module", "")).rsplit(".", 1)[-1]
    args = upload.get("args") or {}
    found: list[tuple[Any, str]] = []
    if name == "file":
        path = next((args[k] for k in ("path", "dest", "name") if args.get(k)), None)
        found.append((path, "remove" if args.get("state") == "absent" else "write"))
        if args.get("state") in ("link", "hard"):
            found.append((args.get("src"), "link"))
    elif name in _MODULE_PATHS:
        keys, access = _MODULE_PATHS[name]
        found.append((next((args[k] for k in keys if args.get(k)), None), access))
    here = cwd if isinstance(cwd, str) and cwd.startswith("/") else ""
    paths = []
    for path, access in found:
        if not isinstance(path, str) or not path:
            continue
        if path == "~" or path.startswith("~/"):
            path = here + path[1:] if here else path
        elif not path.startswith(("/", "~")) and here:
            path = posixpath.join(here, path)
        paths.append({"path": path, "access": access})
    return paths

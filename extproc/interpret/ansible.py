"""What a file an agent uploaded runs: an Ansible module payload (AnsiballZ) or a script.

Ansible runs a module by uploading one Python file over SFTP (`~/.ansible/tmp/ansible-
tmp-*/AnsiballZ_ping.py`) and running it (`/bin/sh -c '/usr/bin/python3 …/AnsiballZ_ping.py
&& sleep 0'`). The command line alone says nothing of what the module does; the file does:
ansible-core's wrapper code (`_ansiballz/_wrapper.py`), then one call

    _ansiballz_main(ansible_module='copy', module_fqn='ansible.modules.copy',
                    profile='legacy', date_time=datetime.datetime(…), rlimit_nofile=0,
                    params='{"ANSIBLE_MODULE_ARGS": {…}}', extensions={},
                    zip_data='UEsDB…')

whose zip holds `ansible/modules/copy.py` and the module_utils it imports. `read_upload`
reads that without running anything (the call is parsed with `ast`, its values are
literals), and believes the module's name only when every byte that would run is
ansible-core's own: the wrapper's code, and each file of the zip, by SHA-256 against the
manifest of known ansible-core releases (data/ansible_core.json, written by `python -m
extproc.interpret.ansible PACKAGE_DIR` from an installed ansible-core). A payload of a
release, a collection or an extension (a debugger, coverage) the manifest does not know
is `unreadable`, with why: a file that looks like Ansible's but runs other code is never
taken for the module it names.

A file that is no payload but a shell script (a `#!/bin/sh`-like first line, or text
with none) is returned as its text, which the caller reads as typed lines; anything else
is unreadable.
"""

from __future__ import annotations

import ast
import base64
import binascii
import functools
import hashlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, Literal, TypedDict

MANIFEST = Path(__file__).with_name("data") / "ansible_core.json"
# What is read of one upload: beyond, it is unreadable (a payload is ~180 KB).
MAX_BYTES = 8 * 1024 * 1024
# The zip's files, uncompressed, at most (a zip bomb is unreadable, never unpacked).
MAX_UNPACKED = 64 * 1024 * 1024

_MAIN = '\n\n\nif __name__ == "__main__":\n    _ansiballz_main(\n'
_SHEBANG_PLACEHOLDER = "# shebang placeholder"
_KEYWORDS = ("ansible_module", "module_fqn", "profile", "date_time", "rlimit_nofile", "params",
             "extensions", "zip_data")
_SHELL_SHEBANG = re.compile(rb"#![ \t]*(?:/usr)?/bin/(?:env[ \t]+)?(?:sh|bash|dash)(?:[ \t]|$)")
_PYTHON_SHEBANG = re.compile(r"#!(?:/usr/bin/env )?(?:/[\w.+-]+)*/?python[0-9.]*")
# The two __init__.py files ansible writes into a payload itself (namespace packages).
_NAMESPACE = "from pkgutil import extend_path\n__path__=extend_path(__path__,__name__)\n"


class Upload(TypedDict, total=False):
    """What one uploaded file is: `kind` ansible (`module`, `args`), shell (`text`) or
    unreadable (`why`); always its `sha256` and `size`."""

    kind: Literal["ansible", "shell", "unreadable"]
    sha256: str
    size: int
    module: str
    fqn: str
    args: dict[str, Any]
    check_mode: bool
    text: str
    why: str


class _Unreadable(ValueError):
    pass


def read_upload(data: bytes) -> Upload:
    """What `data`, a file uploaded whole, would run when executed."""
    base: Upload = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if len(data) > MAX_BYTES:
        return {**base, "kind": "unreadable", "why": f"larger than {MAX_BYTES} bytes"}
    try:
        if data.startswith(b"#!") and _MAIN.encode() in data:
            return {**base, **_payload(data)}
        return {**base, **_script(data)}
    except _Unreadable as exc:
        return {**base, "kind": "unreadable", "why": str(exc)}


def _script(data: bytes) -> Upload:
    first = data.split(b"\n", 1)[0]
    if first.startswith(b"#!") and not _SHELL_SHEBANG.match(first):
        raise _Unreadable(f"a program of its own ({first[:60].decode(errors='replace')})")
    if b"\0" in data:
        raise _Unreadable("binary (it holds NUL bytes)")
    try:
        return {"kind": "shell", "text": data.decode()}
    except UnicodeDecodeError:
        raise _Unreadable("not UTF-8 text") from None


def _payload(data: bytes) -> Upload:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise _Unreadable("an Ansible payload that is not UTF-8") from None
    wrapper, _, call = text.partition(_MAIN)
    shebang, _, code = wrapper.partition("\n")
    if not _PYTHON_SHEBANG.fullmatch(shebang):
        raise _Unreadable(f"an Ansible payload for an interpreter that is no Python's "
                          f"({shebang[:60]})")
    manifest = _manifest()
    digest = hashlib.sha256(f"{_SHEBANG_PLACEHOLDER}\n{code}".encode()).hexdigest()
    if digest not in manifest["wrapper"]:
        raise _Unreadable("an AnsiballZ wrapper that is not one of the ansible-core releases "
                          f"tollgate knows ({', '.join(manifest['versions'])})")
    keywords = _call(_MAIN.lstrip("\n") + call)
    if keywords.get("extensions") != {}:
        raise _Unreadable("an Ansible payload with extensions (a debugger, coverage)")
    name, fqn = keywords["ansible_module"], keywords["module_fqn"]
    if not (isinstance(name, str) and isinstance(fqn, str)
            and re.fullmatch(r"ansible\.modules\.[a-z0-9_]+", fqn)
            and name.rsplit(".", 1)[-1] == fqn.rsplit(".", 1)[1]
            and name.rpartition(".")[0] in ("", "ansible.builtin", "ansible.legacy")):
        raise _Unreadable(f"a module tollgate does not know ({fqn!r}): ansible-core's own "
                          "modules are read, a collection's are not")
    name = fqn.rsplit(".", 1)[1]
    _check_zip(keywords["zip_data"], f"ansible/modules/{name}.py", manifest)
    try:
        params = json.loads(keywords["params"])
        args = params["ANSIBLE_MODULE_ARGS"]
    except (TypeError, ValueError, KeyError):
        raise _Unreadable("its module arguments are not Ansible's JSON") from None
    if not isinstance(args, dict):
        raise _Unreadable("its module arguments are not an object")
    return {"kind": "ansible", "module": f"ansible.builtin.{name}", "fqn": fqn,
            "args": {k: v for k, v in args.items() if not k.startswith("_ansible_")},
            "check_mode": args.get("_ansible_check_mode") is True}


def _call(source: str) -> dict[str, Any]:
    """The keywords of `if __name__ == "__main__": _ansiballz_main(...)`, as values; any
    other shape is unreadable."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise _Unreadable("its call of the module does not parse") from None
    match tree.body:
        case [ast.If(test=ast.Compare(left=ast.Name(id="__name__"), ops=[ast.Eq()],
                                      comparators=[ast.Constant(value="__main__")]),
                     body=[ast.Expr(value=ast.Call(func=ast.Name(id="_ansiballz_main"),
                                                   args=[], keywords=keywords))],
                     orelse=[])]:
            pass
        case _:
            raise _Unreadable("its call of the module is not Ansible's")
    found: dict[str, Any] = {}
    for keyword in keywords:
        if keyword.arg not in _KEYWORDS or keyword.arg in found:
            raise _Unreadable(f"an argument Ansible does not pass ({keyword.arg})")
        if keyword.arg == "date_time":
            _date_time(keyword.value)
            found["date_time"] = None
            continue
        try:
            found[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise _Unreadable(f"its {keyword.arg} is not a literal") from None
    if set(found) != set(_KEYWORDS):
        raise _Unreadable("its call of the module lacks Ansible's arguments")
    return found


def _date_time(node: ast.expr) -> None:
    """`datetime.datetime(2026, 1, 2, …, tzinfo=datetime.timezone.utc)`, and nothing else."""
    match node:
        case ast.Call(func=ast.Attribute(value=ast.Name(id="datetime"), attr="datetime"),
                      args=args, keywords=[ast.keyword(
                          arg="tzinfo", value=ast.Attribute(
                              value=ast.Attribute(value=ast.Name(id="datetime"),
                                                  attr="timezone"), attr="utc"))]) if all(
                isinstance(a, ast.Constant) and type(a.value) is int for a in args):
            return
    raise _Unreadable("its date_time is not Ansible's")


def _check_zip(zip_data: Any, module_file: str, manifest: dict[str, Any]) -> None:
    """Every file of the payload's zip is ansible-core's own, the module's among them."""
    if not isinstance(zip_data, str):
        raise _Unreadable("its zip_data is not text")
    try:
        raw = base64.b64decode(zip_data, validate=True)
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()
    except (binascii.Error, ValueError, zipfile.BadZipFile):
        raise _Unreadable("its zip_data is not a zip archive") from None
    if sum(m.file_size for m in members) > MAX_UNPACKED:
        raise _Unreadable(f"its zip holds more than {MAX_UNPACKED} bytes")
    known: dict[str, list[str]] = manifest["files"]
    names = set()
    for member in members:
        try:
            content = archive.read(member)
        except (zipfile.BadZipFile, ValueError, NotImplementedError, OSError):
            raise _Unreadable(f"its zip's {member.filename} cannot be read") from None
        digest = hashlib.sha256(content).hexdigest()
        allowed = known.get(member.filename, [])
        if member.filename.endswith("/__init__.py"):
            allowed = [*allowed, *manifest["namespace"]]
        if digest not in allowed:
            raise _Unreadable(f"its zip's {member.filename} is not ansible-core's own")
        names.add(member.filename)
    if module_file not in names:
        raise _Unreadable(f"its zip lacks {module_file}")


@functools.cache
def _manifest() -> dict[str, Any]:
    return dict(json.loads(MANIFEST.read_text()))


def write_manifest(package: Path, into: Path = MANIFEST) -> dict[str, Any]:
    """Add the ansible-core installed at `package` (its `ansible/` folder) to the manifest:
    its wrapper's digests (comments kept and stripped, as ansible sends it), and those of
    every file of its modules and module_utils."""
    version = re.search(r"__version__ = '([^']+)'",
                        (package / "release.py").read_text())
    assert version is not None, "not an ansible-core package folder"
    manifest: dict[str, Any] = ({"versions": [], "wrapper": [], "namespace": [], "files": {}}
                                if not into.exists() else json.loads(into.read_text()))
    source = (package / "_internal/_ansiballz/_wrapper.py").read_text()
    stripped = "\n".join("" if ((s := line.strip()) == "" or s.startswith("#"))
                         and s != _SHEBANG_PLACEHOLDER else line
                         for line in source.splitlines())
    stubs = [_NAMESPACE, f'{_NAMESPACE}__version__="{version[1]}"\n__author__="Ansible, Inc."\n']

    def add(key: list[str], digest: str) -> None:
        if digest not in key:
            key.append(digest)

    for code in (source, stripped):
        add(manifest["wrapper"], hashlib.sha256(code.encode()).hexdigest())
    for stub in stubs:
        add(manifest["namespace"], hashlib.sha256(stub.encode()).hexdigest())
    for folder in ("modules", "module_utils"):
        for path in sorted((package / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                name = f"ansible/{path.relative_to(package).as_posix()}"
                add(manifest["files"].setdefault(name, []),
                    hashlib.sha256(path.read_bytes()).hexdigest())
    add(manifest["versions"], version[1])
    into.write_text(json.dumps(manifest, indent=0, sort_keys=True) + "\n")
    return manifest


if __name__ == "__main__":  # python -m extproc.interpret.ansible .venv/…/site-packages/ansible
    print(write_manifest(Path(sys.argv[1]))["versions"])

"""A PEP 503 "simple" package index over HTTPS serving wheels built in the test, so a real
`pip install` can be sent through tollgate's forward proxy with no internet.

Its links are relative (`tollgate-egress-probe/`, `../../files/<wheel>#sha256=...`), so the
pages work under whatever host the client used: 127.0.0.1:PORT directly, `pypi.test` through
the proxy.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import zipfile
from dataclasses import dataclass
from io import BytesIO

from tests.support.http_server import Answer, LocalServer, Streamed
from tests.support.tls import TlsFiles

PROBE = "tollgate-egress-probe"  # the probe's project name; its module is tollgate_egress_probe


def normalize(name: str) -> str:
    """A project's name as PEP 503 spells it in URLs."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Wheel:
    project: str  # normalized
    filename: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def build_wheel(name: str, version: str, files: dict[str, str]) -> Wheel:
    """A pure-Python wheel (py3-none-any) of `files` (path in site-packages -> text), with
    the METADATA, WHEEL and RECORD pip checks."""
    stem = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"
    info = f"{stem}.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode()
    contents[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tollgate-tests\n"
                                 b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in contents.items()]
    contents[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,", ""]).encode()
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return Wheel(normalize(name), f"{stem}-py3-none-any.whl", buffer.getvalue())


def probe_wheel() -> Wheel:
    """tollgate-egress-probe 0.1.0: `import tollgate_egress_probe` gives VALUE = 42."""
    return build_wheel(PROBE, "0.1.0", {"tollgate_egress_probe/__init__.py": "VALUE = 42\n"})


def index_answer(wheels: list[Wheel]) -> Answer:
    """Answers /simple/, /simple/<project>/ and /files/<wheel>; 404 for anything else."""
    projects: dict[str, list[Wheel]] = {}
    for wheel in wheels:
        projects.setdefault(wheel.project, []).append(wheel)
    files = {wheel.filename: wheel for wheel in wheels}

    def answer(method: str, path: str, body: bytes) -> tuple[int, bytes | Streamed, str]:
        path = path.split("?", 1)[0]
        if path == "/simple/":
            return 200, _page([(f"{p}/", p) for p in sorted(projects)]), "text/html"
        found = re.fullmatch(r"/simple/([^/]+)/", path)
        if found and found.group(1) in projects:
            links = [(f"../../files/{w.filename}#sha256={w.sha256}", w.filename)
                     for w in projects[found.group(1)]]
            return 200, _page(links), "text/html"
        found = re.fullmatch(r"/files/([^/]+)", path)
        if found and found.group(1) in files:
            return 200, files[found.group(1)].content, "application/octet-stream"
        return 404, b"not found\n", "text/plain"

    return answer


def package_index(tls: TlsFiles, wheels: list[Wheel]) -> LocalServer:
    """A started index on a free port of 127.0.0.1; its `url` is the index URL (…/simple/)."""
    return LocalServer(index_answer(wheels), "/simple/", tls=tls)


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _page(links: list[tuple[str, str]]) -> bytes:
    anchors = "\n".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a><br>'
                        for href, text in links)
    return ('<!DOCTYPE html>\n<html><head>'
            '<meta name="pypi:repository-version" content="1.0"></head>\n'
            f"<body>\n{anchors}\n</body></html>\n").encode()

"""A git server over HTTPS for the egress tests: git's own `git http-backend` (the smart
HTTP protocol, as hosting services speak it) run as a CGI program per request, behind
`LocalServer`, over bare repositories in a folder of the test's. Pushes are on
(`http.receivepack`), so a test can see whether one reached the server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.http_server import LocalServer
from tests.support.tls import TlsFiles

BACKEND = "/usr/lib/git-core/git-http-backend"
# The request bodies of the two services, as clients send them.
_BODIES = {"/git-upload-pack": "application/x-git-upload-pack-request",
           "/git-receive-pack": "application/x-git-receive-pack-request"}


def bare_repository(root: Path, name: str, files: dict[str, str]) -> Path:
    """A bare repository `root/name` whose one commit holds `files`, pushes taken."""
    work = root / f"{name}-work"
    run(["git", "init", "-q", "-b", "main", str(work)], root)
    for path, text in files.items():
        (work / path).write_text(text, encoding="utf-8")
    run(["git", "add", "."], work)
    run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.test", "commit", "-q",
         "-m", "first"], work)
    bare = root / name
    run(["git", "clone", "-q", "--bare", str(work), str(bare)], root)
    run(["git", "config", "http.receivepack", "true"], bare)
    return bare


def run(argv: list[str], where: Path) -> None:
    subprocess.run(argv, cwd=where, check=True, capture_output=True, timeout=60,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(where),
                        "GIT_CONFIG_NOSYSTEM": "1"})


def git_server(tls: TlsFiles, root: Path) -> LocalServer:
    """A started HTTPS server of the bare repositories in `root` (stop it)."""

    def answer(method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        where, _, query = path.partition("?")
        content_type = next((t for end, t in _BODIES.items() if where.endswith(end)), "")
        done = subprocess.run(
            [BACKEND], input=body, capture_output=True, timeout=60, check=False,
            env={"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
                 "PATH_INFO": where, "QUERY_STRING": query, "REQUEST_METHOD": method,
                 "CONTENT_TYPE": content_type if method == "POST" else "",
                 "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "test",
                 "REMOTE_ADDR": "127.0.0.1", "PATH": "/usr/bin:/bin", "HOME": str(root),
                 "GIT_CONFIG_NOSYSTEM": "1"})
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if line)
        status = int(headers.get("Status", "200").split()[0])
        return status, payload, headers.get("Content-Type", "application/octet-stream")

    return LocalServer(answer, tls=tls)

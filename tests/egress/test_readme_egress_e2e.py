"""The README's egress example, run as a shell runs it: its `export` lines and its curl,
through a real Envoy and tollgate, with nothing of this machine's proxies in the
environment. curl reads only the lower-case `http_proxy` for an http:// URL (the upper
case is ignored, as CGI sets HTTP_PROXY from a request's header): an example that sets
HTTP_PROXY alone sends curl around the proxy."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs.commands import commands
from tests.docs.pages import REPO
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
TOKEN = tokens.token("ada", ["agents"])
# The example as the README showed it before: curl went to the address itself.
UPPER_CASE_ONLY = ["export HTTPS_PROXY=http://agent:$TOKEN@127.0.0.1:3128 "
                   "HTTP_PROXY=http://agent:$TOKEN@127.0.0.1:3128",
                   "curl -si http://169.254.169.254/latest/meta-data/"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "readme-egress", egress={}) as running:
        yield running


def readme_egress_block() -> list[str]:
    """The commands of the README's Egress section, in order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("### Egress")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("#"))
    return [c.text for c in commands(README) if start < c.line <= end]


def run_as_shown(gw: Gateway, shown: list[str], tmp_path: Path) -> str:
    """`shown` run by bash, Envoy's egress port in place of 3128 and the token as $TOKEN,
    in an environment without proxies; curl's whole answer (bounded by a .curlrc, which
    the shown curl line reads unchanged)."""
    assert gw.ports.egress is not None
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    (tmp_path / ".curlrc").write_text("max-time = 10\n")
    env.update(TOKEN=TOKEN, CURL_HOME=str(tmp_path))
    script = "\n".join(shown).replace("127.0.0.1:3128", f"127.0.0.1:{gw.ports.egress}")
    done = subprocess.run(["bash", "-c", f"set -e\n{script}"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def test_the_readme_egress_example_is_answered_by_the_proxy(
        gw: Gateway, tmp_path: Path) -> None:
    shown = readme_egress_block()
    assert any(line.startswith("export http_proxy=") for line in shown)
    assert shown[-1] == "curl -si http://169.254.169.254/latest/meta-data/"
    answer = run_as_shown(gw, shown, tmp_path)
    assert re.match(r"HTTP/1\.1 403 ", answer), answer
    assert "metadata" in answer.lower() and "x-tollgate-trace-id:" in answer.lower(), answer


def test_upper_case_alone_sends_curl_around_the_proxy(gw: Gateway, tmp_path: Path) -> None:
    answer = run_as_shown(gw, UPPER_CASE_ONLY, tmp_path)
    assert "x-tollgate" not in answer.lower(), answer

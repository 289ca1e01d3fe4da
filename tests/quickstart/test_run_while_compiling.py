"""`make run` on a clone whose masking modules are not compiled: tollgate serves at once on
the plain form, saying so in one line, while they compile in the background (Ctrl-C on
`make run` leaves that compile be, in a session of its own); the next start runs them
compiled and compiles nothing. The clone's compiled modules are two small ones of the
real set, so that their compile takes seconds; `tollgate up` runs from this suite's venv
on the clone's package (PYTHONPATH), nothing installed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from extproc import config
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import layout, stack
from tests.support.checkout import REPO, work_tree_copy
from tests.support.folders import passable_folder
from tests.support.quickstart import started_up

pytestmark = pytest.mark.e2e

SMALL = ("catalog", "record_mask")
# What `make run` makes that this test has: the venv's install, this work tree's Cython;
# the player and the identity provider are not needed.
PLAYER = "extproc/admin/recordings/vendor/asciinema-player.min.js"
OIDC = "build/oidc/node_modules/oidc-provider/package.json"
TOOLS = REPO / "build" / "compiled" / "tools"
MAKE_OWN = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}


def small_clone(into: Path) -> Path:
    clone = work_tree_copy(into)
    chooser = clone / "extproc" / "masking" / "compiled.py"
    text = chooser.read_text()
    small = re.sub(r"\nMODULES = \(.*?\)\n", f"\nMODULES = {SMALL!r}\n", text, count=1,
                   flags=re.DOTALL)
    assert small != text
    chooser.write_text(small)
    return clone


def masked_customers(output: str) -> str:
    """The demo's customers, fetched through the gateway as the printed curl line does."""
    (token,) = re.findall(r"export TOKEN=(\S+)", output)
    (url,) = re.findall(r"curl -i (http://127\.0\.0\.1:\d+/api/customers)", output)
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(answer.read().decode())


def test_make_run_serves_on_the_plain_form_while_masking_compiles(tmp_path: Path) -> None:
    clone = small_clone(tmp_path / "tollgate")
    home = tmp_path / "home"
    home.mkdir()
    venv = Path(sys.prefix)
    make = ["make", "--no-print-directory", f"VENV={venv}", f"COMPILE_TOOLS={TOOLS}",
            "-o", f"{venv}/.run-deps", "-o", f"{TOOLS}/.installed", "-o", PLAYER, "-o", OIDC]
    base = stack.free_ports(layout.plan(config.load(QUICKSTART_CONFIG)).span)
    log = clone / "build" / "compiled" / "compile.log"
    cores = len(os.sched_getaffinity(0))
    with passable_folder("tollgate-run-") as temporary:
        env = {k: v for k, v in os.environ.items()
               if k not in MAKE_OWN and k != "TOLLGATE_MASKING"}
        env.update(HOME=str(home), TMPDIR=str(temporary), PYTHONPATH=str(clone),
                   TOLLGATE_CACHE=str(tmp_path / "cache"))
        with started_up([*make, "run", f"ARGS=--base-port {base}"], clone, env, 300) as up:
            output = "".join(up.output)
            assert (f"native/compile.py: masking runs on its plain form while its compiled "
                    f"form builds (2 modules, {cores} at a time; log: build/compiled/"
                    f"compile.log); the next start uses it\n") in output
            assert '"name":"[REDACTED:PERSON]"' in masked_customers(output)
            assert up.stop() == -signal.SIGINT
        stack.wait_until(lambda: "compiled into" in log.read_text(), 300,
                         "the compile make run started")
        assert re.findall(r"compiled (\d/2) masking modules", log.read_text()) == ["1/2", "2/2"]
        again = subprocess.run([*make, "run", "ARGS=--help"], cwd=clone, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        assert "native/compile.py" not in again.stdout + again.stderr
        version = subprocess.run([f"{venv}/bin/tollgate", "--version"], cwd=clone, env=env,
                                 capture_output=True, text=True, timeout=120, check=True)
        assert re.search(r"\nmasking: compiled by Cython [\d.]+ \(2 modules\)\n", version.stdout)

"""The drivers' own test suites: where each comes from, and how it is run against a
database, directly or through tollgate (tests/drivers/test_driver_suites.py compares
the two).

- asyncpg 0.32.0: its sdist on PyPI holds its tests/ (and the installed wheel its
  asyncpg._testbase): downloaded once into build/drivers/, pinned by version and sha256.
  CI runs it.
- psycopg 3.3, PyMySQL 1.2 and mysqlclient 2.3: their sdists hold no tests, which live
  only in their repositories. A clone at the release's tag, named by PSYCOPG_SOURCE,
  PYMYSQL_SOURCE and MYSQLCLIENT_SOURCE, is read and never written (`make test-drivers
  PSYCOPG_SOURCE=... PYMYSQL_SOURCE=... MYSQLCLIENT_SOURCE=...`); CI, which reaches PyPI
  but not the repositories' host, cannot run them.

Each suite runs as its own pytest process, in its own folder (its cache, its report,
its HOME), with its own configuration (never tollgate's), the plugin in plugin/
writing each test's outcome as it is known.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.drivers.outcomes import read_lines
from tests.support.checkout import REPO

SOURCES = REPO / "build" / "drivers"
PLUGIN = Path(__file__).resolve().parent / "plugin"
# How long one phase of one test may take before the plugin fails it (the suites' own
# slowest take a few seconds).
DEADLINE_SECONDS = 60
# The pytest plugins of tollgate's venv that the suites do not use, left out:
# pytest-asyncio would run its own loop under the suites' async tests, and the others
# took 6 of the 8 CPU-seconds a suite's pytest spent starting (datasette's the most);
# pytest-randomly, where installed, would order the two runs differently. anyio's stays
# (psycopg's async tests run on it).
NOT_OURS = tuple(arg for plugin in (
    "asyncio", "datasette", "hypothesispytest", "faker", "platformdirs", "xdist",
    "xdist.looponfail", "randomly") for arg in ("-p", f"no:{plugin}"))


def _fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return bytes(answer.read())


class SuiteUnavailable(Exception):
    """A suite that cannot be had here, with what to do about it."""


@dataclass(frozen=True)
class Sdist:
    """A released sdist on PyPI that holds the suite: `folder` of it is extracted."""

    project: str
    version: str
    sha256: str
    folder: str = "tests"

    @property
    def tree(self) -> Path:
        return SOURCES / f"{self.project}-{self.version}"

    def obtain(self) -> Path:
        """The extracted folder (build/drivers/PROJECT-VERSION/FOLDER), downloaded from
        the index (its hash checked) the first time; one process at a time does it. The
        suite tests the driver installed, which must be its version."""
        installed = importlib.metadata.version(self.project)
        if installed != self.version:
            raise SuiteUnavailable(
                f"{self.project} {installed} is installed, and the suite pinned is "
                f"{self.version}'s: pin the sdist of {installed} (its sha256 from "
                f"`pip download --no-binary :all: --no-deps {self.project}=={installed}`)")
        SOURCES.mkdir(parents=True, exist_ok=True)
        done = self.tree / ".complete"
        with (SOURCES / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                self._download()
        return self.tree

    def _download(self) -> None:
        """The sdist, straight from the index's file (`pip download` of an sdist builds
        its metadata first: for asyncpg, a Cython build of 2 CPU-minutes, for nothing)."""
        downloads = SOURCES / "sdists"
        downloads.mkdir(exist_ok=True)
        archive = downloads / f"{self.project}-{self.version}.tar.gz"
        index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
        try:
            listing = _fetch(f"{index}/{self.project}/",
                             {"Accept": "application/vnd.pypi.simple.v1+json"})
            files = {f["filename"]: f for f in json.loads(listing)["files"]}
            url = files[archive.name]["url"]
            data = _fetch(url)
        except (OSError, KeyError, ValueError) as exc:
            raise SuiteUnavailable(f"{archive.name} could not be had from {index}: "
                                   f"{exc!r}") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise SuiteUnavailable(f"{url} is not the sdist pinned (sha256 {self.sha256})")
        archive.write_bytes(data)
        shutil.rmtree(self.tree, ignore_errors=True)
        self.tree.mkdir(parents=True)
        with tarfile.open(archive) as sdist:
            top = sdist.getnames()[0].split("/")[0]
            wanted = [m for m in sdist.getmembers()
                      if m.name.startswith(f"{top}/{self.folder}/")]
            for member in wanted:
                member.name = member.name.removeprefix(f"{top}/")
            _extract(sdist, self.tree, wanted)
        (self.tree / ".complete").write_text(self.sha256)


@dataclass(frozen=True)
class Checkout:
    """A clone of the driver's repository at a release's tag, named by `variable`."""

    variable: str
    repository: str
    tag: str
    marker: str  # a file every such clone holds, to tell a wrong folder

    def obtain(self) -> Path:
        value = os.environ.get(self.variable)
        if not value:
            raise SuiteUnavailable(
                f"{self.variable} names no clone: its sdist holds no tests. Run "
                f"`git clone --depth 1 --branch {self.tag} {self.repository} DIR` and "
                f"`make test-drivers {self.variable}=DIR` (docs/development.md)")
        tree = Path(value).expanduser().resolve()
        if not (tree / self.marker).is_file():
            raise SuiteUnavailable(f"{self.variable}={value}: no {self.marker} there; "
                                   f"a clone of {self.repository} at {self.tag} is needed")
        return tree


@dataclass(frozen=True)
class Endpoint:
    """Where a suite's clients connect, and as whom: the database server itself, or
    Envoy's listener in front of tollgate (the token as the password). Over TLS either
    way, unverified: the certificates are the tests' own."""

    port: int
    user: str
    password: str
    ca_file: Path
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Prepared:
    """A suite ready to run in `work`: its folder, arguments and environment."""

    rootdir: Path
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A driver's suite: where it comes from, the database it needs, the pytest
    arguments choosing what of it runs (`full`, and the subset `make test` runs, if
    any), and how it is pointed at an endpoint."""

    name: str
    source: Sdist | Checkout
    database: str  # "postgres" or "mysql"
    full: tuple[str, ...]
    prepare: Callable[[Suite, Path, Endpoint, Path], Prepared]
    # The subsets `make test` runs, by name (empty: the suite is not run in CI).
    chunks: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _ini(work: Path, addopts: str, more: str = "") -> Path:
    """A pytest configuration of the suite's own (tollgate's would otherwise be found
    above the suite's folder)."""
    ini = work / "pytest.ini"
    ini.write_text(f"[pytest]\naddopts = {addopts}\n{more}")
    return ini


def _asyncpg(suite: Suite, tree: Path, to: Endpoint, work: Path) -> Prepared:
    """asyncpg's cluster helpers use a running server when PGHOST is set
    (asyncpg/_testbase: RunningCluster), connecting with libpq's variables. Its own
    pytest options (pyproject.toml), which the sdist's tests/ folder leaves behind."""
    ini = _ini(work, "--assert=plain --tb=native --import-mode=importlib",
               "filterwarnings = default\n")
    return Prepared(tree, ("-c", str(ini)), {
        "PGHOST": to.host, "PGPORT": str(to.port), "PGUSER": to.user,
        "PGPASSWORD": to.password, "PGDATABASE": "suite", "PGSSLMODE": "require"})


def _psycopg(suite: Suite, tree: Path, to: Endpoint, work: Path) -> Prepared:
    """psycopg's suite takes its database from PSYCOPG_TEST_DSN, and keeps its own
    configuration (pyproject.toml: warnings are errors)."""
    dsn = (f"host={to.host} port={to.port} user={to.user} password={to.password} "
           "dbname=suite sslmode=require")
    return Prepared(tree, ("-c", str(tree / "pyproject.toml")),
                    {"PSYCOPG_TEST_DSN": dsn})


def _pymysql(suite: Suite, tree: Path, to: Endpoint, work: Path) -> Prepared:
    """PyMySQL's suite reads its servers from pymysql/tests/databases.json: the package
    (its tests inside it) is copied out of the clone, which is never written, and the
    copy given one. Two databases, test1 and test2, as its CI sets them up."""
    copy = work / "pymysql-tree"
    shutil.copytree(tree / "pymysql", copy / "pymysql",
                    ignore=shutil.ignore_patterns("__pycache__", "databases.json"))
    common = {"host": to.host, "port": to.port, "user": to.user, "password": to.password,
              "ssl": {"ca": str(to.ca_file), "check_hostname": False, "verify_mode": False}}
    (copy / "pymysql" / "tests" / "databases.json").write_text(json.dumps([
        {**common, "database": "test1", "use_unicode": True, "local_infile": True},
        {**common, "database": "test2"}]))
    ini = _ini(work, "--tb=short")
    return Prepared(copy, ("-c", str(ini)))


def _mysqlclient(suite: Suite, tree: Path, to: Endpoint, work: Path) -> Prepared:
    """mysqlclient's suite reads its server from the option file $TESTDB names (group
    MySQLdb-tests, read by MariaDB Connector/C, the library under the installed MySQLdb),
    one of the work folder's here: the clone is never written. Its database,
    mysqldb_test, as its CI sets it up; TLS through the CA file (the server's name is not
    checked: Connector/C 3.3 does not by default)."""
    options = work / "mysqlclient.cnf"
    password = f"password = {to.password}\n" if to.password else ""
    options.write_text(
        f"[MySQLdb-tests]\nhost = {to.host}\nport = {to.port}\nuser = {to.user}\n"
        f"{password}database = mysqldb_test\ndefault-character-set = utf8mb4\n"
        f"ssl-ca = {to.ca_file}\n")
    ini = _ini(work, "--tb=short")
    return Prepared(tree, ("-c", str(ini)), {"TESTDB": str(options)})


ASYNCPG = Suite(
    "asyncpg", Sdist("asyncpg", "0.32.0",
                     "45e64e56714d888330b884aad1dfb363d0bf43fb343e3d1a8968525f3bade478"),
    "postgres",
    # test_connect rewrites the cluster's pg_hba.conf and restarts it.
    ("tests", "--ignore=tests/test_connect.py"), _asyncpg,
    {"protocol": tuple(f"tests/test_{name}.py" for name in (
        "execute", "prepare", "cursor", "transaction", "cancellation", "codecs", "listeners",
        "copy", "exceptions", "cache_invalidation"))})

PSYCOPG = Suite(
    "psycopg", Checkout("PSYCOPG_SOURCE", "https://github.com/psycopg/psycopg", "3.3.4",
                        "tests/fix_db.py"),
    "postgres",
    # The pool is another distribution; test_typing runs mypy over examples.
    ("tests", "--ignore=tests/pool", "--ignore=tests/test_typing.py",
     "-m", "not slow and not timing and not flakey"), _psycopg)

PYMYSQL = Suite(
    "pymysql", Checkout("PYMYSQL_SOURCE", "https://github.com/PyMySQL/PyMySQL", "v1.2.0",
                        "pymysql/tests/base.py"),
    "mysql", ("pymysql/tests",), _pymysql)

MYSQLCLIENT = Suite(
    "mysqlclient", Checkout("MYSQLCLIENT_SOURCE", "https://github.com/PyMySQL/mysqlclient",
                            "v2.3.1", "tests/configdb.py"),
    "mysql", ("tests",), _mysqlclient)

SUITES = {suite.name: suite for suite in (ASYNCPG, PSYCOPG, PYMYSQL, MYSQLCLIENT)}


@dataclass(frozen=True)
class Ran:
    """One run of a suite: each test's outcome lines (the plugin's), how long it took
    and the CPU its pytest process spent, and the tail of its output."""

    lines: list[dict[str, object]]
    seconds: float
    cpu_seconds: float
    returncode: int
    output: str


def run(prepared: Prepared, selection: tuple[str, ...], work: Path,
        timeout: float) -> Ran:
    """The suite's pytest process, in its folder, with `selection`; ended at `timeout`
    (what it reported by then is kept, and said to be cut short)."""
    report = work / "outcomes.jsonl"
    report.unlink(missing_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("PG", "PSYCOPG", "PYTEST", "TOLLGATE"))},
           **prepared.env, "HOME": str(home), "PYTHONPATH": str(PLUGIN),
           "PYTHONPYCACHEPREFIX": str(SOURCES / "pycache"),
           "TOLLGATE_SUITE_REPORT": str(report),
           "TOLLGATE_SUITE_DEADLINE": str(DEADLINE_SECONDS)}
    argv = [sys.executable, "-m", "pytest", *prepared.args, "--rootdir",
            str(prepared.rootdir), *NOT_OURS, "-p", "tollgate_suite_report", "-q",
            "--no-header", "-rN", "-o", f"cache_dir={work / 'cache'}", *selection]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=prepared.rootdir, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        returncode = -1
        output = f"{_text(expired.stdout)}{_text(expired.stderr)}\n(ended after {timeout:g} s)"
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Ran(read_lines(report), seconds, cpu, returncode, output[-4000:])


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _extract(archive: tarfile.TarFile, into: Path, members: list[tarfile.TarInfo]) -> None:
    """`members` extracted as data only: regular files and folders inside `into`. Python
    3.11.4 and later check it themselves (`filter="data"`); before, it is checked here."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, members=members, filter="data")
        return
    for member in members:
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") \
                or ".." in parts:
            raise SuiteUnavailable(f"{member.name}: no plain file or folder of the sdist's")
    archive.extractall(into, members=members)

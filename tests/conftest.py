"""Fixtures shared by the whole suite: stores, a signing key, ports, TLS files, the OTLP
receiver and running gateways (their machinery is tests/support/gateway.py)."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.quickstart import stack
from extproc.recording.chain import Signer
from extproc.store.aio import AsyncStore, open_store
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import databases, footprint
from tests.support.databases import throwaway_database
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway
from tests.support.http_server import refusing_port
from tests.support.suite_ports import quickstart_ports, suite_ports, workers_of
from tests.support.tls import TlsFiles, write_tls_files

# `e2e` by folder (tests/e2e/ runs through a real Envoy) or by fixture (a running gateway,
# the OTLP receiver it exports to, a PostgreSQL database); modules that start such things
# themselves, or run the `tollgate` command as a process, set `pytestmark`.
E2E_FOLDER = Path(__file__).parent / "e2e"
E2E_FIXTURES = frozenset({"gateway", "make_gateway", "otlp", "pg_url", "sshd"})

# `--suite-report=DIR`: where the run's time goes (make test-report).
pytest_plugins = ["tests.support.suite_report"]

# Hypothesis's profiles: `ci` (what `make test` runs, TOLLGATE_HYPOTHESIS=ci) draws the
# same examples every run, from the test's own seed, and keeps none between runs: a red
# run is the commit's, never the dice's, and the same commit gives the same verdict.
# Unset, the default: new examples each run, failures kept in .hypothesis/ and tried first.
# Each test sets its own budget (max_examples) by what its property needs.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.load_profile(os.environ.get("TOLLGATE_HYPOTHESIS", "default"))


# What tollgate caches for a user (the Rego tests a pack passed: policy/smoke.py) goes to
# a folder of this run's, never to the user's ~/.cache, and what other tools keep in the
# user's ~/.config and ~/.cache (Chromium's crash reports, matplotlib's font list,
# onnxruntime's id file) to others; set before any process starts, so every xdist worker
# and every process they start share them.
if "TOLLGATE_CACHE" not in os.environ:
    _RUN = tempfile.mkdtemp(prefix="tollgate-test-run-")
    os.environ["TOLLGATE_CACHE"] = os.path.join(_RUN, "cache")
    os.environ["XDG_CONFIG_HOME"] = os.path.join(_RUN, "config")
    os.environ["XDG_CACHE_HOME"] = os.path.join(_RUN, "tools-cache")
    _OWNER = os.getpid()
    atexit.register(lambda: os.getpid() == _OWNER and shutil.rmtree(_RUN, True))


# Devices the suite must leave as it found them: a shell run as root once wrote a regular
# file over /dev/null (bash truncating HISTFILE=/dev/null), and later tools broke.
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")


def broken_devices() -> list[str]:
    return [path for path in DEVICES if not stat.S_ISCHR(os.stat(path).st_mode)]


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run on ports the suite cannot use (TOLLGATE_TEST_PORTS, in
    docs/development.md), once, before any test runs, rather than fail every test that
    starts a server. The default range is clear of the quickstart's ports
    (tests/test_suite_ports.py), which are read only for a range set."""
    value = os.environ.get(stack.PORTS_VARIABLE)
    try:
        suite_ports(value, workers_of(len(config.getoption("tx", None) or ())),
                    stack.ephemeral_ports(), quickstart_ports() if value and value.strip() else ())
    except stack.StackError as exc:
        raise pytest.UsageError(str(exc)) from None


BEFORE = pytest.StashKey[footprint.Footprint]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run on a machine whose devices are already broken: the failure at the
    end would blame this run. The run's controller (xdist's, or the only process) notes
    what else the suite may not change (tests/support/footprint.py)."""
    if broken := broken_devices():
        raise pytest.UsageError(f"{', '.join(broken)} is not a character device before the "
                                "suite ran: restore it (mknod -m 666 /dev/null c 1 3)")
    if not hasattr(session.config, "workerinput"):
        session.config.stash[BEFORE] = footprint.take(Path.home())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a test left a device other than it found it, or changed the
    machine outside its temporary folders (a name in the home folder or ~/.ssh, a file
    under /etc, a throwaway database that could not be dropped)."""
    said = []
    try:
        databases.wait_for_drops()
    except RuntimeError as exc:
        said.append(str(exc))
    if broken := broken_devices():
        said.append(f"{', '.join(broken)} is no longer a character device: a test wrote "
                    "over it")
    before = session.config.stash.get(BEFORE, None)
    if before is not None:
        changed = footprint.changes(before, footprint.take(Path.home()), Path.home())
        said += [f"{line}: a test changed the machine outside its temporary folders"
                 for line in changed]
    if said:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for line in said:
            if reporter is not None:
                reporter.write_line(f"FAILED: {line}", red=True)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist worksteal` with a module's tests kept in one process where it can be
    (tests/support/scheduling.py): its shared set-up made once, not once per process."""
    if config.getvalue("dist") == "worksteal":
        from tests.support.scheduling import ModuleStealing

        return ModuleStealing(config, log)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """The collected suite lives as long as the run: out of the cyclic garbage collector's
    reach (gc.freeze), so that none of its passes walks its million objects again (a full
    pass cost 0.3-0.8 s: each explicit gc.collect(), and the automatic ones between)."""
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `e2e` by what a test uses, so that a new test is marked without being told
    (`make test-unit` leaves them out)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgresql = callspec is not None and callspec.params.get("store_url") == "postgresql"
        if (item.path.is_relative_to(E2E_FOLDER) or on_postgresql
                or E2E_FIXTURES.intersection(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """Each test leaves the root logger as it found it. The command line run in this
    process (`extproc.cli.main`) sets it up as the program does (`basicConfig(force=True)`,
    at INFO): a later test in the same process then caught INFO records it did not make
    (a credential store's "loaded from", in a test asserting it logged nothing)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards."""
    with throwaway_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same test on a SQLite file and on a PostgreSQL database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[AsyncStore]:
    """The store at `store_url`, opened for the event loop (tables up to date)."""
    opened = await open_store(store_url)
    yield opened
    await opened.close()


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    """The audit record's signing key, made for the test."""
    return Signer.from_file(tmp_path / "audit.key", create=True)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 where nothing listens, kept so for the test."""
    with refusing_port() as port:
        yield port


@pytest.fixture(scope="session")
def engine() -> EmbeddedEngine:
    """The default pack on the embedded engine, compiled once per test process (the
    bypass tables and corpora decide thousands of inputs with it; it keeps no state
    between decisions)."""
    return EmbeddedEngine(read_modules(POLICIES), "data.tollgate.decision")


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a certificate for 127.0.0.1 and localhost it signed."""
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver



@pytest.fixture
def make_gateway(request: pytest.FixtureRequest, tmp_path: Path,
                 otlp: OtlpReceiver) -> Iterator[GatewayFactory]:
    """A factory for gateways a test may change (its own policies, targets, or kill it).

    A test's own database (`pg_url`) is made first, so that it is dropped after the
    gateways stop: dropped under them, their last records could not be written, and each
    would wait out its drain before it is killed."""
    if "pg_url" in request.fixturenames:
        request.getfixturevalue("pg_url")
    factory = GatewayFactory(tmp_path, otlp)
    yield factory
    factory.stop_all()



@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[Gateway]:
    """The default gateway with the default policy pack, shared by a module's tests."""
    with module_gateway(tmp_path_factory, otlp, "gateway") as running:
        yield running

"""The quickstart's demo MariaDB (extproc/quickstart/demo_mariadb.py): a real server
seeded as `tollgate up` starts it, and what `up` says on a machine without one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pymysql
import pytest

from extproc import config
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import accounts, demo_mariadb, layout, stack, up
from extproc.quickstart.demo_upstream import CUSTOMERS
from tests.support.folders import passable_folder
from tests.support.processes import process_uid


@pytest.mark.slow
def test_the_server_is_seeded_and_the_gateway_account_logs_in() -> None:
    """A password with a quote and a backslash is the account's, as given: the seed's
    literals are escaped as the server reads them. The account alone may use nothing;
    as a role of the demo's it reads and writes the customers, and creates nothing."""
    password = "it's a \\ test"
    account = accounts.service_account(*demo_mariadb.ACCOUNTS)
    with accounts.private_folder(account, "demo-mariadb") as folder:
        port = stack.free_port()
        server = demo_mariadb.start(port, folder, account, password, log_dir=None)
        try:
            # Never as root: as `mysql` under root, else as whoever runs `up`.
            assert process_uid(server.pid) == (os.getuid() if account is None else account.uid)
            with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
                pymysql.connect(host="127.0.0.1", port=port, user=demo_mariadb.ACCOUNT,
                                password=password, database=demo_mariadb.DATABASE)
            connection = pymysql.connect(host="127.0.0.1", port=port, user=demo_mariadb.ACCOUNT,
                                         password=password)
            with connection, connection.cursor() as cursor:
                cursor.execute("SET ROLE tollgate_agent")
                cursor.execute(f"USE {demo_mariadb.DATABASE}")
                cursor.execute("SELECT id, name, ssn FROM customers ORDER BY id")
                assert cursor.fetchall() == tuple(
                    (c["id"], c["name"], c["ssn"]) for c in CUSTOMERS)
                assert cursor.execute("UPDATE customers SET name = name") == 0
                # (ANALYZE TABLE takes SELECT and INSERT on MariaDB; the histograms it
                # writes are in mysql.column_stats, which the role cannot read.)
                for denied in ("CREATE TABLE t (i int)", "CREATE VIEW v AS SELECT 1",
                               "ALTER TABLE customers ADD COLUMN x int",
                               "SELECT * FROM mysql.column_stats"):
                    with pytest.raises(pymysql.err.OperationalError, match="command denied"):
                        cursor.execute(denied)
        finally:
            assert server.stop() == 0


@pytest.mark.slow
def test_a_temporary_folder_its_account_cannot_write_is_no_matter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """$TMPDIR passable but not writable for `mysql` (as a user's own): the server and
    its installation keep their temporary files in its private folder."""
    with passable_folder() as shared:
        monkeypatch.setenv("TMPDIR", str(shared))
        monkeypatch.setattr(tempfile, "tempdir", str(shared))
        account = accounts.service_account(*demo_mariadb.ACCOUNTS)
        with accounts.private_folder(account, "demo-mariadb") as folder:
            server = demo_mariadb.start(stack.free_port(), folder, account, "pw", log_dir=None)
            assert server.stop() == 0
        assert list(shared.iterdir()) == []


def test_without_mariadb_up_says_why_and_how_to_add_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_mariadb, "_PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert demo_mariadb.missing() == (
        "no mariadbd, mariadb-install-db, mariadb on this machine (Debian: apt-get install "
        "mariadb-server mariadb-client)")
    quickstart = config.load(QUICKSTART_CONFIG)
    with contextlib.ExitStack() as folders:
        server, lines = up._demo_mysql(quickstart, quickstart.mysql, tmp_path, folders,
                                       layout.plan(quickstart))
    assert server is None
    assert lines.startswith("\nNo demo MariaDB: no mariadbd, mariadb-install-db, mariadb on "
                            "this machine (Debian: apt-get install mariadb-server")
    # The front's certificate is made all the same: a server of one's own needs it.
    assert (tmp_path / ".tollgate" / "mysql" / "server.pem").is_file()

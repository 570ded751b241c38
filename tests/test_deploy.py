"""The deployment files in `deploy/` load through Dagster's own config code.

With `--external-postgres` it is instantiated against that server and stores a real run there.
"""

import importlib.metadata
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterInstance, asset, materialize, validate_run_config
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import configurable_class_data
from dagster._serdes.config_class import class_from_code_pointer
from helm_chart import (
    API_TEMPLATE,
    DAGSTER_CHART,
    chart,
    chart_values,
    dependency_values,
    misplaced_keys,
    render_verbatim,
    rendered_api_objects,
)
from psycopg.conninfo import conninfo_to_dict

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    params = conninfo_to_dict(url)
    for name, key in (("HOST", "host"), ("PORT", "port"), ("DB", "dbname"), ("USER", "user")):
        monkeypatch.setenv(f"DAGSTER_PG_{name}", str(params[key]))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", params.get("password", ""))


def test_production_instance_config_validates(monkeypatch):
    _point_at(monkeypatch, "host=db.example.org port=5432 dbname=dagster user=assay_owner password=x")
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    assert set(config["storage"]["postgres"]["postgres_db"]) >= {"hostname", "db_name", "password"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["freshness"] == {"enabled": True}


def test_production_instance_keeps_runs_and_events_in_postgres(external_postgres, monkeypatch, tmp_path):
    if external_postgres is None:
        pytest.skip("needs --external-postgres (make test runs it)")
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    url = external_postgres.create_database("dagster", vector=False)
    _point_at(monkeypatch, url)

    @asset
    def hello() -> int:
        return 1

    # as deployed: the file alone in DAGSTER_HOME (compute logs and artifacts are written beside it)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        result = materialize([hello], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(hello.key) is not None
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from runs where run_id = %s", [result.run_id]).fetchone()[0] == 1


def _configurable(entry: dict):
    """Dagster's own path from a `module`/`class`/`config` entry to a validated config, short of
    instantiating the class (a K8sRunLauncher would look for a cluster)."""
    data = configurable_class_data(entry)
    cls = class_from_code_pointer(data.module_name, data.class_name)
    result = process_config(cls.config_type(), data.config_dict)
    assert result.success, result.errors
    return cls


def test_kubernetes_instance_validates(monkeypatch):
    pytest.importorskip("dagster_k8s", reason='the "deploy" extra (dagster-k8s) is not installed')
    _point_at(monkeypatch, "host=db port=5432 dbname=dagster user=assay_owner password=x")
    monkeypatch.setenv("ASSAY_IMAGE", "registry.example.com/assay:0.1.0")
    config, _ = dagster_instance_config(str(DEPLOY / "k8s"))
    assert _configurable(config["run_launcher"]).__name__ == "K8sRunLauncher"
    assert _configurable(config["run_coordinator"]).__name__ == "QueuedRunCoordinator"


def test_celery_run_config_validates_against_the_pipeline(monkeypatch):
    pytest.importorskip("dagster_celery", reason='the "deploy" extra (dagster-celery) is not installed')
    from assay.orchestration.definitions import defs

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://localhost:6379/1")
    job = defs.resolve_job_def("pipeline_celery")
    assert job.executor_def.name == "celery"
    run_config = yaml.safe_load((DEPLOY / "celery" / "run_config.yaml").read_text())
    validate_run_config(job, run_config)
    with pytest.raises(Exception, match="broker"):
        validate_run_config(job, {"execution": {"config": {"broker": 42}}})


# deploy/helm/assay is a chart of assay's own: Dagster's chart as its dependency (it renders no object
# handed to it in values, so the read API could not go into its values) and the read API's template.
# Dagster's Helm chart validates its values with a JSON schema that ships only inside the chart
# (helm/dagster/values.schema.json, generated from the dagster repository's `schema` package; it is
# in no pip package, and nothing is downloaded here). So the test renders, from the `dagster:` block
# of deploy/helm/assay/values.yaml, the instance blocks the chart's templates would render
# (templates/helpers/instance/_run-launcher.tpl, _run-coordinator.tpl, _postgresql.tpl) and checks
# those with Dagster's own config code, the way the deployed instance would load them. Not checked:
# the chart's other values (webserver, daemon and user-deployment pods) beyond what is listed below,
# and `helm template` itself (no helm binary here, and Dagster's chart is not downloaded).
# The keys the chart reads from runLauncher.config.k8sRunLauncher (its schema forbids any other).
K8S_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
RUN_K8S_CONFIG_KEYS = {
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}
# What the chart fills in itself (its values.yaml defaults and its own names for a release `assay`)
CHART_DEFAULTS = {"imagePullPolicy": "Always", "loadInclusterConfig": True}
CHART_DAGSTER_HOME = "/opt/dagster/dagster_home"


def _helm_values() -> dict:
    """What Dagster's chart gets from deploy/helm/assay/values.yaml."""
    return dependency_values(chart_values())


def _helm_instance(values: dict) -> dict:
    """The dagster.yaml the chart renders from these values (the parts assay sets)."""
    launcher = {**CHART_DEFAULTS, **values["runLauncher"]["config"]["k8sRunLauncher"]}
    unknown = set(launcher) - K8S_LAUNCHER_KEYS
    assert not unknown, (
        f"deploy/helm/assay/values.yaml: k8sRunLauncher has keys the chart does not know: {unknown}"
    )
    run_k8s = launcher.get("runK8sConfig", {})
    assert not set(run_k8s) - RUN_K8S_CONFIG_KEYS, (
        f"unknown runK8sConfig keys: {set(run_k8s) - RUN_K8S_CONFIG_KEYS}"
    )
    pg = values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
    }
    if pg.get("postgresqlScheme"):
        postgres_db["scheme"] = pg["postgresqlScheme"]
    storage = {"postgres_db": postgres_db}
    config = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or "assay",
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": "assay-dagster",
        "dagster_home": CHART_DAGSTER_HOME,
        "instance_config_map": "assay-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "env_config_maps": [e["name"] for e in launcher.get("envConfigMaps", [])] or None,
        "env_secrets": [e["name"] for e in launcher.get("envSecrets", [])] or None,
        "env_vars": launcher.get("envVars") or None,
        "volume_mounts": launcher.get("volumeMounts") or None,
        "volumes": launcher.get("volumes") or None,
        "labels": launcher.get("labels") or None,
        "resources": launcher.get("resources") or None,
        "fail_pod_on_run_failure": True if launcher.get("failPodOnRunFailure") else None,
        "run_k8s_config": {_snake(k): v for k, v in run_k8s.items()} or None,
    }
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    return {
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": storage,
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": storage,
        },
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": storage,
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": values["runLauncher"]["type"],
            "config": {k: v for k, v in config.items() if v is not None},
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": daemon["runCoordinator"]["type"],
            "config": {"max_concurrent_runs": queued.get("maxConcurrentRuns", -1)},
        },
        "run_monitoring": {"enabled": daemon["runMonitoring"]["enabled"]},
        "run_retries": {"enabled": True, "max_retries": daemon["runRetries"]["maxRetries"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _run_worker_job(launcher_entry: dict, tmp_path: Path):
    """The Kubernetes Job that Dagster's K8sRunLauncher, configured by `launcher_entry`, would submit
    for a run of `pipeline`: built by dagster-k8s' own code, which checks every Kubernetes field
    (volumes, mounts, resources, container config) against the Kubernetes API models. Nothing is sent:
    the launcher gets a kubeconfig for an address that is never contacted."""
    from dagster import DagsterRun
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job

    cls = _configurable(launcher_entry)
    assert cls is K8sRunLauncher
    config = process_config(cls.config_type(), launcher_entry["config"]).value
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    launcher = K8sRunLauncher(
        **{**config, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    )
    context = K8sContainerContext.create_for_run(
        DagsterRun(job_name="pipeline"), launcher, include_run_tags=False
    )
    job_config = context.get_k8s_job_config(
        job_image="registry.example.com/assay:0.1.0", run_launcher=launcher
    )
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_run"],
        "dagster-run-1",
        context.run_k8s_config,
        component="run_worker",
    )
    return context.namespace, job


def _what_a_run_pod_gets(namespace: str, job) -> dict:
    pod = job.spec.template.spec
    (container,) = pod.containers
    return {
        "namespace": namespace,
        "secrets": sorted(s.secret_ref.name for s in container.env_from or [] if s.secret_ref),
        "env": {e.name: e.value for e in container.env if e.name.startswith(("ASSAY_", "HF_"))},
        "mounts": sorted((m.name, m.mount_path) for m in container.volume_mounts),
        "claims": sorted(
            (v.name, v.persistent_volume_claim.claim_name) for v in pod.volumes if v.persistent_volume_claim
        ),
        "requests": container.resources.requests,
        "limits": container.resources.limits,
    }


def test_helm_values_render_a_valid_instance(tmp_path, monkeypatch):
    pytest.importorskip("dagster_k8s", reason='the "deploy" extra (dagster-k8s) is not installed')
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "x")
    instance = _helm_instance(_helm_values())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(tmp_path))  # the instance schema, as a pod loads it
    # run pods use assay's image (SQLAlchemy 2.1): the driver must be named, as in deploy/dagster.yaml
    assert config["run_storage"]["config"]["postgres_db"].get("scheme") == "postgresql+psycopg2"
    for block in ("run_storage", "event_log_storage", "schedule_storage", "run_coordinator"):
        _configurable(config[block])
    namespace, job = _run_worker_job(config["run_launcher"], tmp_path)
    pod = _what_a_run_pod_gets(namespace, job)
    assert pod["namespace"] == "assay"
    assert pod["env"] == {"ASSAY_HOME": "/data/assay", "HF_HUB_OFFLINE": "1"}
    assert ("landing", "/data/assay/landing") in pod["mounts"]
    assert pod["claims"] == [("landing", "assay-landing")]


def test_helm_values_and_the_kubernetes_instance_launch_the_same_run_pods(tmp_path, monkeypatch):
    """deploy/k8s/dagster.yaml is the Helm instance written by hand: a run pod gets the same."""
    pytest.importorskip("dagster_k8s", reason='the "deploy" extra (dagster-k8s) is not installed')
    _point_at(monkeypatch, "host=db port=5432 dbname=dagster user=assay_owner password=x")
    monkeypatch.setenv("ASSAY_IMAGE", "registry.example.com/assay:0.1.0")
    by_hand, _ = dagster_instance_config(str(DEPLOY / "k8s"))
    helm = _helm_instance(_helm_values())
    assert _what_a_run_pod_gets(*_run_worker_job(by_hand["run_launcher"], tmp_path)) == _what_a_run_pod_gets(
        *_run_worker_job(helm["run_launcher"], tmp_path)
    )
    assert by_hand["run_coordinator"]["config"] == helm["run_coordinator"]["config"]
    assert by_hand["run_retries"]["max_retries"] == helm["run_retries"]["max_retries"]


def test_a_helm_values_typo_is_caught():
    values = _helm_values()
    values["runLauncher"]["config"]["k8sRunLauncher"]["jobNamepsace"] = "assay"
    with pytest.raises(AssertionError, match="jobNamepsace"):
        _helm_instance(values)
    values = _helm_values()
    volume = values["runLauncher"]["config"]["k8sRunLauncher"]["volumes"][0]
    volume["persistentVolumeClaim"] = {"claim": "assay-landing"}  # the field is claimName
    pytest.importorskip("dagster_k8s", reason='the "deploy" extra (dagster-k8s) is not installed')
    with pytest.raises(Exception, match="claim"):
        _run_worker_job(_helm_instance(values)["run_launcher"], Path(tempfile.mkdtemp()))


def test_the_chart_deploys_dagsters_chart_of_the_installed_version_and_the_read_api():
    metadata = chart()
    assert metadata["apiVersion"] == "v2"  # dependencies in Chart.yaml (Helm 3 and 4)
    (dependency,) = metadata["dependencies"]
    assert dependency["name"] == DAGSTER_CHART
    assert dependency["repository"] == "https://dagster-io.github.io/helm"
    # Dagster publishes one chart per release, with the release's version
    assert dependency["version"] == importlib.metadata.version("dagster")
    assert "condition" not in dependency and "alias" not in dependency  # always installed, as `dagster`
    # the release's version is assay's, and so is the image every pod runs
    assert metadata["appVersion"] == importlib.metadata.version("assay")
    (code,) = _helm_values()["dagster-user-deployments"]["deployments"]
    assert code["image"]["tag"] == metadata["appVersion"]
    assert [o["kind"] for o in rendered_api_objects()] == ["Deployment", "Service"]
    # the chart's one template of its own, which reads no values (as misplaced_keys assumes)
    assert [p.name for p in API_TEMPLATE.parent.iterdir()] == ["api.yaml"]


def test_every_chart_value_reaches_dagsters_chart():
    values = chart_values()
    assert misplaced_keys(values, chart()) == set()
    assert set(values) == {"global", DAGSTER_CHART}
    # a block written at the top level instead of under `dagster:` is caught, not silently dropped
    values["runLauncher"] = values[DAGSTER_CHART].pop("runLauncher")
    assert misplaced_keys(values, chart()) == {"runLauncher"}
    with pytest.raises(KeyError, match="runLauncher"):
        _helm_instance(dependency_values(values))


def test_the_api_template_renders_as_written():
    """With no template action, Helm renders the file as it is: `kubectl apply` of the same file
    deploys the same objects without Helm, and there is one copy of them."""
    text = API_TEMPLATE.read_text()
    assert render_verbatim(text) == list(yaml.safe_load_all(text))
    templated = text.replace("name: assay-api\n", "name: {{ .Release.Name }}-api\n", 1)
    with pytest.raises(AssertionError, match="template action"):
        render_verbatim(templated)

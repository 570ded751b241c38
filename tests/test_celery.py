"""`pipeline_celery` on a real Celery cluster: Debian's `redis-server` on 127.0.0.1 as the broker and
result backend, two `dagster-celery` workers as separate processes, the small sample run to the end.

The workers are started the way deploy/celery/run_config.yaml tells an operator to
(`dagster-celery worker start -A dagster_celery.app -y deploy/celery/run_config.yaml`), each with its
own name. The cluster's run gets its own ASSAY_HOME (its own embedded server and Dagster instance),
so its row counts are compared with the session's in-process `pipeline` run over the same sample.
`make test` installs redis-server when it is missing (`make redis`); without it, or without the
`dagster-celery[redis]` packages, the test is skipped with the reason.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterRunStatus, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository
from homes import SEED, own_home

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RUN_CONFIG = DEPLOY / "celery" / "run_config.yaml"
WORKERS = ("assay-celery-a", "assay-celery-b")
# The layers whose tables are compared; quality.* and agents.* hold per-run history, not data.
LAYERS = ("bronze", "silver", "gold", "platinum")
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120

pytestmark = [
    # the cluster's run needs a database of its own, which only the embedded server gives here
    pytest.mark.embedded,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="Debian's redis-server is missing (`make redis` installs it: apt-get install redis-server)",
    ),
]
pytest.importorskip("dagster_celery", reason='dagster-celery is not installed (pip install -e ".[dev]")')
pytest.importorskip("redis", reason='the redis client is not installed (pip install -e ".[dev]")')


def layer_counts(postgres) -> dict[str, int]:
    """Rows of every table and view in the data layers, by `schema.table`; the load ledger by source
    (`bronze.load_batches[source]`), since other tests of the session load sources of their own."""
    with postgres.connect(autocommit=True) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any(%s) and (table_schema, table_name) <> ('bronze', 'load_batches')"
            " order by 1, 2",
            [list(LAYERS)],
        ).fetchall()
        counts = {
            f"{schema}.{name}": conn.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]
            for schema, name in tables
        }
        batches = conn.execute("select source, count(*) from bronze.load_batches group by 1").fetchall()
        return counts | {f"bronze.load_batches[{source}]": n for source, n in batches}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, ready, processes: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        dead = [p.args for p in processes if p.poll() is not None]
        tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
        assert not dead, f"{what}: a process exited before it was ready: {dead}\n{tails}"
        assert time.monotonic() < deadline, f"{what} not ready after {START_TIMEOUT_S} s\n{tails}"
        time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (dagster-celery starts `celery worker`, which forks its pool),
    then SIGKILL to what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def _start(command: list[str], log: Path, env: dict[str, str], stack: ExitStack) -> subprocess.Popen:
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent, start_new_session=True
    )
    stack.callback(_stop, process)
    return process


@dataclass
class Cluster:
    home: Path
    env: dict[str, str]
    logs: list[Path]


@pytest.fixture(scope="module")
def in_process_counts(pipeline_run, postgres) -> dict[str, int]:
    """The session's in-process `pipeline` run over the small sample, counted before this module
    moves ASSAY_HOME."""
    assert pipeline_run.success
    return layer_counts(postgres)


@pytest.fixture(scope="module")
def cluster(in_process_counts) -> Iterator[Cluster]:
    """A fresh home with the same small sample, redis-server and two named workers; all stopped and
    removed afterwards, whatever happened."""
    from redis import Redis

    from assay.core.database import PostgresResource
    from assay.landing.sample import generate
    from assay.orchestration.pipeline import dagster_instance

    with ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        home = stack.enter_context(own_home("assay-celery-"))
        generate(home / "landing", home / "ground_truth", size="small", seed=SEED)
        PostgresResource().url()  # the embedded server, started once here, not by two workers at once
        dagster_instance().dispose()  # $ASSAY_HOME/dagster/dagster.yaml, which the workers load
        port = _free_port()
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # dagster-celery runs `celery`
            "ASSAY_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:{port}/1",
        }
        for name in ("DAGSTER_HOME", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            mp.setenv(name, env[name])
        redis_dir = home / "redis"
        redis_dir.mkdir()
        redis_log = redis_dir / "redis.log"
        # in the foreground, no persistence, loopback only: the test owns its whole life
        redis = _start(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(redis_dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            redis_log, env, stack,
        )  # fmt: skip
        client = stack.enter_context(Redis(host="127.0.0.1", port=port, socket_connect_timeout=1))

        def pong() -> bool:
            try:
                return bool(client.ping())
            except Exception:
                return False

        _wait_for("redis-server", pong, [redis], [redis_log])
        logs = [redis_log]
        workers = []
        for name in WORKERS:
            log = home / f"{name}.log"
            logs.append(log)
            # one step at a time per worker: two workers share the machine's cores
            workers.append(
                _start(
                    [
                        str(BIN / "dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(RUN_CONFIG),
                        "-n",
                        name,
                        "--",
                        "--concurrency=1",
                    ],
                    log,
                    env,
                    stack,
                )  # fmt: skip
            )
        from celery import Celery

        app = Celery(broker=env["CELERY_BROKER_URL"])
        stack.callback(app.close)

        def both_answer() -> bool:
            answered = {name.split("@")[0] for reply in app.control.ping(timeout=1.0) for name in reply}
            return answered >= set(WORKERS)

        _wait_for("the two Celery workers", both_answer, [redis, *workers], logs)
        yield Cluster(home, env, logs)


@pytest.fixture(scope="module")
def celery_run(cluster):
    """`pipeline_celery` over every asset of `pipeline` (the LLM agents are left out, as `assay run`
    leaves them out), launched here and executed step by step on the workers."""
    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import dagster_instance, full_range_tags

    data = defs.resolve_job_def("pipeline").asset_layer.selected_asset_keys
    job = ReconstructableRepository.for_module(
        "assay.orchestration.definitions", "defs"
    ).get_reconstructable_job("pipeline_celery")
    run_config = yaml.safe_load(RUN_CONFIG.read_text())
    with dagster_instance() as instance:
        result = execute_job(
            job,
            instance=instance,
            run_config=run_config,
            tags=full_range_tags(),
            asset_selection=list(data),
            raise_on_error=False,
        )
        events = instance.all_logs(result.run_id)
        run = instance.get_run_by_id(result.run_id)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-4000:]}" for log in cluster.logs)
    return run, events, tails


def _seconds(events) -> float:
    times = {e.dagster_event.event_type: e.timestamp for e in events if e.is_dagster_event}
    return times[DagsterEventType.RUN_SUCCESS] - times[DagsterEventType.RUN_START]


def test_the_celery_run_succeeds_with_the_in_process_row_counts(celery_run, in_process_counts):
    from assay.core.database import PostgresResource

    run, events, tails = celery_run
    failures = [e.message for e in events if e.is_dagster_event and e.dagster_event.is_step_failure]
    assert run.status == DagsterRunStatus.SUCCESS, f"{failures}\n{tails}"
    failed_checks = [
        e.dagster_event.event_specific_data.check_name
        for e in events
        if e.is_dagster_event
        and e.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and not e.dagster_event.event_specific_data.passed
    ]
    assert failed_checks == []
    counts = layer_counts(PostgresResource())
    assert {f"{layer}.transactions" for layer in ("bronze", "silver")} <= counts.keys()
    # the cluster's home holds only the pipeline's tables; the session's also those of other tests
    # (e.g. tests/test_bronze.py's unit sources), so the comparison is over the cluster's tables
    assert counts == {table: in_process_counts.get(table) for table in counts}
    # the figure in the README's Scaling section (this run's wall time, this machine, this load)
    print(f"\ncelery run {_seconds(events):.0f} s; load {os.getloadavg()[0]:.2f} (1 min)")


def test_steps_ran_in_both_workers(celery_run):
    _, events, _ = celery_run
    by_worker: dict[str, set[str]] = {}
    for e in events:
        if e.is_dagster_event and e.dagster_event.event_type == DagsterEventType.ENGINE_EVENT:
            worker = e.dagster_event.engine_event_data.metadata.get("Celery worker")
            if worker is not None:
                by_worker.setdefault(worker.value.split("@")[0], set()).add(e.step_key)
    assert set(by_worker) == set(WORKERS), by_worker
    steps = {e.step_key for e in events if e.is_dagster_event and e.dagster_event.is_step_success}
    # every step that succeeded was sent to a worker: none ran in the launching process
    assert set().union(*by_worker.values()) == steps

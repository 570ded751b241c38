"""Shared fixtures: a throwaway ASSAY_HOME with a real Postgres and the small sample.

The database is the embedded server by default. With `--external-postgres` the session starts a
separate server (`tests/external_pg.py`: TCP, password authentication, a non-superuser owner) and
points `ASSAY_DATABASE_URL` at it; tests marked `embedded` are about the embedded server and skip.

The full pipeline runs once per session (`pipeline_run`); tests read what it produced.

Two tiers: a test that needs a database, a model or the pipeline (one of `SLOW_FIXTURES`, directly
or through another fixture, or marked `integration` itself) is an integration test; the rest are
fast units. `make test-fast` runs only the units (the inner loop); `make test` runs everything.
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import psycopg
import pytest
from homes import SEED, own_home

# anyio resolves `open_file` (Starlette's static files: the API's /docs assets) with a lazy import,
# which pytest rewrites (anyio is a pytest plugin) through ast.parse. Done first in an API server's
# thread, it raced another thread's parse and CPython 3.11's AST checker, which is not thread-safe,
# raised "AST constructor recursion depth mismatch" (one fresh-clone `make test` in three). Resolve
# it here, in the main thread, before any server starts.
anyio.open_file  # noqa: B018


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--external-postgres",
        action="store_true",
        help="run against a separate PostgreSQL server (TCP, password, non-superuser owner)",
    )


# A database (assay_home and the fixtures that make their own homes), a language model (backend) or
# several embedding models (models).
SLOW_FIXTURES = {"assay_home", "home", "high", "landing", "backend", "models"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)
    if not config.getoption("--external-postgres"):
        return
    skip = pytest.mark.skip(reason="about the embedded server; this session runs on an external one")
    for item in items:
        if item.get_closest_marker("embedded"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def external_postgres(request: pytest.FixtureRequest):
    """The separate server of an `--external-postgres` session, else None."""
    if not request.config.getoption("--external-postgres"):
        yield None
        return
    from external_pg import ExternalPostgres

    server = ExternalPostgres().start()
    saved = {k: os.environ.get(k) for k in ("ASSAY_DATABASE_URL", "ASSAY_READER_PASSWORD")}
    os.environ["ASSAY_DATABASE_URL"] = server.url()
    os.environ["ASSAY_READER_PASSWORD"] = server.reader_password
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture(scope="session")
def assay_home() -> Iterator[Path]:
    with own_home("assay-test-") as home:
        yield home


@pytest.fixture(scope="session")
def sample(assay_home: Path):
    from assay.landing.sample import generate

    return generate(assay_home / "landing", assay_home / "ground_truth", size="small", seed=SEED)


@pytest.fixture(scope="session")
def postgres(assay_home: Path, external_postgres):
    from assay.core.database import PostgresResource

    return PostgresResource()


@pytest.fixture(scope="session")
def pipeline_run(sample, postgres):
    from dagster import DagsterInstance

    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import full_range_tags
    from assay.quality.store import record_run_checks

    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("pipeline").execute_in_process(
        raise_on_error=False, tags=full_range_tags(), instance=instance
    )
    record_run_checks(postgres, instance, result.run_id)  # as `assay run` and the sensors do
    return result


@pytest.fixture
def conn(postgres) -> Iterator[psycopg.Connection]:
    with postgres.connect(autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def api_settings():
    from assay.core.settings import ApiSettings

    # Generous default limits (fuzzing sends hundreds of requests); tests that need tight ones make
    # their own key. A short key cache so revocations show quickly.
    return ApiSettings(
        access_log=False,
        key_cache_seconds=0.2,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=1_000_000,
        page_size_default=20,
        page_size_max=50,
        max_in_values=10,
        pool_timeout_s=1.0,
        cache_poll_seconds=0.25,
        unauthenticated_per_minute=1_000_000,
        unauthenticated_burst=1_000_000,
    )


@pytest.fixture(scope="session")
def api_server(pipeline_run, postgres, api_settings) -> Iterator[str]:
    """The read API over this session's pipeline output, served by uvicorn on 127.0.0.1; its base URL."""
    import threading
    import time

    import uvicorn

    from assay.api.app import create_app
    from assay.api.protocol import GuardedHttpProtocol

    app = create_app(api_settings, postgres)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", http=GuardedHttpProtocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def api_keys(postgres) -> dict[str, str]:
    """Tokens by role: admin (everything: `*`, and `audit`, which `*` does not give), vendors (marts
    scope, vendor_spend only), revoked."""
    from assay.api.keys import create_key, revoke_key

    tokens = {
        "admin": create_key(postgres, "test admin", scopes=["*", "audit"])[1],
        "vendors": create_key(postgres, "test vendors", scopes=["marts"], marts=["vendor_spend"])[1],
    }
    info, tokens["revoked"] = create_key(postgres, "test revoked")
    revoke_key(postgres, info.id)
    return tokens


@pytest.fixture(scope="session")
def agent_answers(pipeline_run, postgres) -> str:
    """Real answers in `agents.answers` for the read API: the `categorise` task run by the real
    runner with the real default model (SmolLM2-135M, CPU) over six inputs, stored by the runner's own
    store code. Returns the task's name.

    Lazy like every session fixture, so in a whole-suite run it starts after tests/test_agents.py
    (which counts the categorise runs it makes itself).
    """

    from assay.agents.backends.transformers import TransformersBackend
    from assay.agents.runner import run_task
    from assay.agents.tasks.categorise import Categorise

    # the same cache folder as tests/test_agents.py: the GGUF is dequantised once per machine
    models = Path(tempfile.gettempdir()) / "assay-test-models"
    backend = TransformersBackend(None, device="cpu", batch_size=8, models_dir=models)
    outcome = run_task(Categorise(), backend, postgres, limit=6)
    assert outcome.answers(), "the categorise runs produced no answer"
    return Categorise.name

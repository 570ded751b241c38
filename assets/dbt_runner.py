"""Where a dbt call of a step runs: in the step's own process (dbt's programmatic `dbtRunner`), or in
a `dbt` subprocess as dagster-dbt starts it; either way with the run's window in dbt's environment.

dagster-dbt's `DbtCliResource.cli` builds the call (selection, environment, target folder) and hands
it to `subprocess.Popen`; its `DbtCliInvocation` then reads dbt's JSON log lines from the process's
stdout and turns them into Dagster's asset events and checks. `dbt_call` puts itself in place of
that `Popen`, for the calling thread only:

- **in-process** (the default): dbt runs in the step's process through `dbtRunner`, which is already
  imported there (dagster-dbt imports dbt to resolve relations), so a call pays no dbt start-up:
  a new `dbt` process spends seconds importing dbt before it reads the project (8 s of a 24 s step
  at load 6). dbt's events reach dagster-dbt as the same JSON lines a subprocess prints (those at
  info level and above, as dbt's stdout shows them), so asset events, checks and errors are the
  same. dbt keeps global state (flags, adapters, the environment it reads), so in-process calls take
  a lock: one at a time per process, whichever thread asks; the call's environment is dbt's only for
  the duration of the call and restored after.
- **subprocess**: dagster-dbt's own `dbt` process, with the window added to the environment handed
  to that process (the process's `os.environ` is never changed).

The replacement sits on dagster-dbt's module name `subprocess` (`dagster_dbt.core.dbt_cli_invocation`)
and applies only inside `dbt_call` on the thread that entered it; any other caller gets the real
`subprocess.Popen`.
"""

import contextlib
import io
import os
import subprocess
import threading
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dagster import DagsterExecutionInterruptedError
from dagster_dbt.core import dbt_cli_invocation

_LOCK = threading.Lock()  # dbt's global state: one in-process call at a time in this process
_local = threading.local()  # what dbt_call set for this thread: (extra env, in_process)
EXIT_FAILED = 1  # dbt's exit code for a call that ran and failed (2: it could not run)
EXIT_ERROR = 2


@contextlib.contextmanager
def dbt_call(extra_env: Mapping[str, str], in_process: bool) -> Iterator[None]:
    """Within this block, the dbt call dagster-dbt starts on this thread gets `extra_env` added to its
    environment, and runs in this process when `in_process`."""
    _install()
    previous = getattr(_local, "call", None)
    _local.call = (dict(extra_env), in_process)
    try:
        yield
    finally:
        _local.call = previous


def _popen(args: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs: Any):
    call = getattr(_local, "call", None)
    if call is None:
        return subprocess.Popen(args, env=env, **kwargs)
    extra_env, in_process = call
    full_env = {**(env if env is not None else os.environ), **extra_env}
    if not in_process:
        return subprocess.Popen(args, env=full_env, **kwargs)
    return InProcessDbt(list(args), full_env)


def _install() -> None:
    """Put `_popen` in place of dagster-dbt's `subprocess.Popen` (once; other names unchanged)."""
    if isinstance(dbt_cli_invocation.subprocess, _Subprocess):
        return
    dbt_cli_invocation.subprocess = _Subprocess()


class _Subprocess(types.ModuleType):
    """`subprocess` as dagster-dbt's invocation module sees it: the real module but `Popen`."""

    def __init__(self) -> None:
        super().__init__("subprocess")
        self.Popen = _popen

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


class InProcessDbt:
    """A finished in-process dbt call, shaped as the `subprocess.Popen` dagster-dbt reads: `stdout`
    holds dbt's JSON log lines (info level and above), `wait()` its exit code. The call runs when
    this is made (dagster-dbt makes it where it would start the process), so the step's events arrive
    when dbt has finished rather than line by line."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_json

        self.args = args
        lines: list[bytes] = []

        def collect(msg) -> None:
            if msg.info.level != "debug":  # what dbt's own stdout shows (its file log keeps debug)
                lines.append(msg_to_json(msg).encode() + b"\n")

        # the executable's name goes; dbt's stdout says nothing (the lines come through `collect`),
        # its debug log goes to the call's dbt.log as a process's would (with stdout off, dbt would
        # turn the file off too)
        file_level = env.get("DBT_LOG_LEVEL_FILE", "debug")
        dbt_args = [*args[1:], "--log-level", "none", "--log-level-file", file_level]
        with _LOCK, _environment(env):
            result = dbtRunner(callbacks=[collect]).invoke(dbt_args)
        if isinstance(result.exception, KeyboardInterrupt | SystemExit | DagsterExecutionInterruptedError):
            raise result.exception  # a stopped run stops here, as a killed process would
        if result.success:
            self.returncode = 0
        elif result.exception is not None:
            self.returncode = EXIT_ERROR
            lines.append(f"dbt could not run: {result.exception!r}".encode() + b"\n")
        else:
            self.returncode = EXIT_FAILED
        self.stdout = io.BytesIO(b"".join(lines))

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def poll(self) -> int:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Nothing to signal: the call has finished."""


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """`os.environ` holds `env`'s values inside the block (dbt reads its configuration and `env_var()`
    there); only the names `env` changes are set, and put back after."""
    changed = {name: os.environ.get(name) for name, value in env.items() if os.environ.get(name) != value}
    os.environ.update({name: env[name] for name in changed})
    try:
        yield
    finally:
        for name, value in changed.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

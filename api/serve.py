"""`assay serve`: uvicorn in front of `api.app:create_app`."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

from assay.api.protocol import GuardedHttpProtocol
from assay.core.database import PostgresResource
from assay.core.settings import get_settings


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    import uvicorn

    # Workers build their app from the environment: pass the command line's choices on that way.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"ASSAY_API_{name}"] = str(value)
    settings = get_settings().api
    # Start (or join) the embedded server in this process: it stays up as long as `assay serve` runs.
    # The workers get its URL as if it were external: worker processes end without running exit
    # handlers, so had they joined the embedded server themselves, it would count them as users
    # forever and never stop.
    os.environ["ASSAY_DATABASE_URL"] = PostgresResource().url()
    # uvicorn re-raises SIGTERM after its graceful shutdown; by default that kills the process before
    # exit handlers run, and the embedded server would keep this process on its list of users.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    metrics_dir = None
    if settings.workers > 1:
        # one exposition across the worker processes (prometheus-client's multiprocess mode)
        metrics_dir = tempfile.mkdtemp(prefix="assay-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "assay.api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=settings.access_log,
            limit_concurrency=settings.max_concurrency,
            server_header=False,
            # caps on the request line and headers, enforced before parsing them whole (414 / 431)
            http=GuardedHttpProtocol,
            proxy_headers=False,
            log_level="info",
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)

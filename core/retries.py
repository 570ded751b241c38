"""Transient database errors retry the step with exponential backoff; every other error fails it.

A plain Dagster `RetryPolicy` retries any failure - a failed quality gate or a bad file would run
again three times for nothing. So the Python assets that talk to Postgres wear `retry_transient`:
a lost connection, a restart, a deadlock or serialization failure (`psycopg.OperationalError` and
its subclasses, also when wrapped in `DatabaseError`) asks Dagster to retry the step after 2, 4,
8 s (plus jitter); anything else propagates unchanged. Each retry is logged and visible in the run.
"""

import functools
import inspect
import random
from collections.abc import Callable

import psycopg
from dagster import RetryRequested

MAX_RETRIES = 3
BASE_SECONDS = 2.0


def is_transient(exc: BaseException) -> bool:
    """A connection-level or concurrency error that a later attempt may not meet."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError):
            return True
        seen = seen.__cause__
    return False


def backoff_seconds(retry_number: int) -> float:
    """2, 4, 8 ... seconds, +-25 % so that parallel steps do not retry in lockstep."""
    return BASE_SECONDS * 2**retry_number * random.uniform(0.75, 1.25)


def _retry(context, exc: Exception) -> RetryRequested:
    wait = backoff_seconds(context.retry_number)
    context.log.warning(
        f"transient database error (attempt {context.retry_number + 1} of {MAX_RETRIES + 1}), "
        f"retrying in {wait:.1f}s: {exc}"
    )
    return RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=wait)


def retry_transient(fn: Callable) -> Callable:
    """Decorate an asset's compute function (below `@asset`/`@multi_asset`); its first argument is
    the context. Works for functions that return and for generators."""

    def should_retry(context, exc: Exception) -> bool:
        return is_transient(exc) and context.retry_number < MAX_RETRIES

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(context, *args, **kwargs):
            try:
                yield from fn(context, *args, **kwargs)
            except Exception as exc:
                if should_retry(context, exc):
                    raise _retry(context, exc) from exc
                raise

        return generator

    @functools.wraps(fn)
    def function(context, *args, **kwargs):
        try:
            return fn(context, *args, **kwargs)
        except Exception as exc:
            if should_retry(context, exc):
                raise _retry(context, exc) from exc
            raise

    return function

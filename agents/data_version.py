"""The data an answer was computed from, so a cached answer is reused only while that data is unchanged.

A run's answer is a function of its input, its prompts, its model and the results of its tool calls.
The first three are in the cache key (`runner.cache_key`); a task's input is read from gold/platinum
by its input query, so a change in the rows it reads changes its input hash. Tool results are read
mid-run, so each tool call's result is fingerprinted in the run's trace (`result_hash`) and, before a
cached answer is reused, its recorded calls are replayed (cheap read-only queries) and compared: a
change in gold re-runs exactly the answers whose tool results changed, and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from assay.agents.tasks.base import stable_hash
from assay.agents.tools import ToolBox

log = logging.getLogger(__name__)


def result_hash(result: dict[str, Any]) -> str:
    """The fingerprint of one tool result: its rows (and whatever else the tool returned)."""
    return stable_hash(result)


def tool_calls(steps: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The tool calls recorded in a run's trace (entries with a `tool`)."""
    return [step for step in steps or () if "tool" in step]


def still_current(tools: ToolBox, steps: Iterable[dict[str, Any]] | None) -> bool:
    """Whether every tool call of a cached run returns, now, the result it returned then.

    A call recorded without a fingerprint (a run stored before fingerprints existed) or one that now
    fails counts as changed: the answer is recomputed rather than trusted.
    """
    for call in tool_calls(steps):
        recorded = call.get("result_hash")
        if recorded is None:
            return False
        try:
            now = tools.call(call["tool"], call["arguments"])
        except Exception as exc:  # the tool's data or schema changed under it: recompute
            log.info("replaying %s failed (%s): the cached answer is recomputed", call["tool"], exc)
            return False
        if result_hash(now) != recorded:
            return False
    return True

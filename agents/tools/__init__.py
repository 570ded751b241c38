"""What agents may call between steps. Every tool reads through the read-only role.

The model never writes SQL: tools take typed arguments (checked against each tool's JSON schema) and
compile parameterised queries from fixed catalogues. The connection belongs to `assay_reader`
(SELECT on gold, platinum, quality and agents only), runs every statement read-only under a
statement timeout, and returns at most `row_cap` rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from assay.agents.tools.db import ReaderSession, ToolError
from assay.agents.tools.metrics import METRIC_TOOL_SCHEMA, run_metric
from assay.agents.tools.process import PROCESS_TOOL_SCHEMA, run_process_lookup
from assay.agents.tools.retrieval import SEARCH_TOOL_SCHEMA, prepare_search, run_search

log = logging.getLogger(__name__)

__all__ = ["TOOLS", "Tool", "ToolBox", "ToolError", "ReaderSession"]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]  # JSON schema of the arguments (without the "tool" field)
    run: Callable[[ReaderSession, dict[str, Any]], dict[str, Any]]
    # batched work for all of one step's calls of this tool, before they run (e.g. encode queries)
    prepare: Callable[[ReaderSession, list[dict[str, Any]]], None] | None = None


TOOLS: dict[str, Tool] = {
    "metric": Tool(
        "metric",
        "a number from the gold marts: a metric, optionally grouped by one dimension and filtered",
        METRIC_TOOL_SCHEMA,
        run_metric,
    ),
    "search": Tool(
        "search",
        "hybrid (vector + full-text) search over transaction and vendor documents (platinum)",
        SEARCH_TOOL_SCHEMA,
        run_search,
        prepare_search,
    ),
    "process": Tool(
        "process",
        "process-mining results of the approval process (variants, bottlenecks, ...)",
        PROCESS_TOOL_SCHEMA,
        run_process_lookup,
    ),
}


class ToolBox:
    """The tools one task may use, over one read-only session."""

    def __init__(self, session: ReaderSession, allowed: Mapping[str, Tool] | None = None):
        self.session = session
        self.tools = dict(allowed if allowed is not None else TOOLS)

    def prepare(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        """Let each tool do its batched work for one step's calls (name, arguments) at once.

        Only a speed-up: when it fails, each call still runs (and fails, if it must) on its own.
        """
        by_tool: dict[str, list[dict[str, Any]]] = {}
        for name, arguments in calls:
            tool = self.tools.get(name)
            if tool is not None and tool.prepare is not None and _valid(arguments, tool.schema):
                by_tool.setdefault(name, []).append(arguments)
        for name, arguments in by_tool.items():
            try:
                self.tools[name].prepare(self.session, arguments)
            except Exception:
                log.warning("preparing %d %s calls failed; each runs on its own", len(arguments), name)

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {sorted(self.tools)}")
        try:
            jsonschema.validate(arguments, tool.schema)
        except jsonschema.ValidationError as exc:
            raise ToolError(f"invalid arguments for {name}: {exc.message}") from exc
        return tool.run(self.session, arguments)


def _valid(arguments: dict[str, Any], schema: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(arguments)

"""What agents may call between steps. Every tool reads through the read-only role.

The model never writes SQL: tools take typed arguments (checked against each tool's JSON schema) and
compile parameterised queries from fixed catalogues. The connection belongs to `assay_reader`
(SELECT on gold, platinum, quality and agents only), runs every statement read-only under a
statement timeout, and returns at most `row_cap` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from agents.tools.db import ReaderSession, ToolError
from agents.tools.metrics import METRIC_TOOL_SCHEMA, run_metric
from agents.tools.process import PROCESS_TOOL_SCHEMA, run_process_lookup
from agents.tools.retrieval import SEARCH_TOOL_SCHEMA, run_search

__all__ = ["TOOLS", "Tool", "ToolBox", "ToolError", "ReaderSession"]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]  # JSON schema of the arguments (without the "tool" field)
    run: Callable[[ReaderSession, dict[str, Any]], dict[str, Any]]


TOOLS: dict[str, Tool] = {
    "metric": Tool(
        "metric",
        "a number from the gold marts: a metric, optionally grouped by one dimension and filtered",
        METRIC_TOOL_SCHEMA,
        run_metric,
    ),
    "search": Tool(
        "search",
        "full-text search over transaction and vendor documents (platinum.documents)",
        SEARCH_TOOL_SCHEMA,
        run_search,
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

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {sorted(self.tools)}")
        try:
            jsonschema.validate(arguments, tool.schema)
        except jsonschema.ValidationError as exc:
            raise ToolError(f"invalid arguments for {name}: {exc.message}") from exc
        return tool.run(self.session, arguments)

"""What a task is: an input query (one run per row), prompts, tools, an output schema, a validation
and a step limit. The runner knows nothing else about a task.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from assay.agents.backends import GenerationRequest
from assay.agents.tools import ReaderSession


class OutputError(ValueError):
    """The model's reply is not what the step asked for (bad JSON, failed validation): retryable."""


@dataclass(frozen=True)
class RunInput:
    key: str  # unique within the task, e.g. a transaction id
    data: dict[str, Any]  # everything from the database that goes into the prompt (JSON-able)


@dataclass(frozen=True)
class ToolCall:
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Final:
    answer: dict[str, Any]


@dataclass
class RunState:
    """One run of a task on one input, advanced one step at a time by the runner."""

    input: RunInput
    messages: list[dict[str, str]] = field(default_factory=list)
    status: str = "active"  # active | succeeded | failed
    steps: int = 0
    retries_left: int = 1
    retrying: bool = False  # the current step repeats an invalid one
    answer: dict[str, Any] | None = None
    citations: list[str] = field(default_factory=list)
    error: str | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    scratch: dict[str, Any] = field(default_factory=dict)  # the task's own per-run state

    @property
    def key(self) -> str:
        return self.input.key

    def fail(self, error: str) -> None:
        self.status, self.error, self.finished = "failed", error, time.perf_counter()

    def succeed(self, answer: dict[str, Any], citations: list[str]) -> None:
        self.status, self.answer, self.citations = "succeeded", answer, citations
        self.finished = time.perf_counter()

    @property
    def latency_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started


def stable_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Task:
    """Subclass, set the class attributes and implement the methods; one file per task."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"  # bump when the prompts or parsing change meaning
    asset_name: ClassVar[str] = ""  # key agents/<asset_name>; defaults to the task's name
    description: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()  # upstream asset keys ("gold/category_trends"): the asset's deps
    tools: ClassVar[tuple[str, ...]] = ()
    max_steps: ClassVar[int] = 1  # generation steps a run may take, not counting its one retry
    timeout_s: ClassVar[float] = 3600.0  # wall time of a run, checked before each of its steps
    system_prompt: ClassVar[str] = ""
    output_schema: ClassVar[dict[str, Any]] = {}

    # -- identity: part of every cache key ---------------------------------------------------------

    def prompt_hash(self) -> str:
        """Changes whenever the text or schema that shapes a prompt changes."""
        texts = {k: v for k, v in vars(type(self)).items() if k.isupper() or k == "system_prompt"}
        return stable_hash(self.name, self.version, texts, self.output_schema, self.tools)

    def input_hash(self, run_input: RunInput) -> str:
        return stable_hash(run_input.data)

    # -- what the runner calls ---------------------------------------------------------------------

    def load_inputs(self, session: ReaderSession, limit: int | None = None) -> list[RunInput]:
        """One input per row of the task's query (set-based: one statement for all inputs)."""
        raise NotImplementedError

    def start(self, run: RunState) -> None:
        """Set the first prompt's messages."""
        raise NotImplementedError

    def request(self, run: RunState) -> GenerationRequest:
        """The prompt for this run's next step, with its constraint."""
        raise NotImplementedError

    def parse(self, run: RunState, text: str) -> ToolCall | Final:
        """Read the model's reply; raise OutputError when it is not usable."""
        raise NotImplementedError

    def observe(self, run: RunState, call: ToolCall, result: dict[str, Any]) -> None:
        """Add a tool's result to the conversation for the next step."""
        run.messages.append(
            {"role": "assistant", "content": json.dumps({"tool": call.tool, **call.arguments})}
        )
        run.messages.append({"role": "user", "content": "Tool result: " + json.dumps(result, default=str)})

    def validate(self, run: RunState, answer: dict[str, Any]) -> list[str]:
        """Check a final answer against the run's input; return its citations or raise OutputError."""
        return []

    def retry_message(self, error: str) -> str:
        return f"That reply was not valid ({error}). Reply again, following the format exactly."


def parse_json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputError(f"not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(value, dict):
        raise OutputError("not a JSON object")
    return value


def data_block(value: Any) -> str:
    """Data from the database for a prompt: JSON inside <data> tags, never read as instructions."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    # a closing tag inside the data must not end the block early
    return "<data>" + text.replace("</data>", "<\\/data>") + "</data>"

"""The lockstep runner: all runs of a task advance together, one batched generation per step.

At every step each active run contributes exactly one prompt, and the whole step is one
`backend.generate` call (vLLM and the transformers backend batch it; on CPU the transformers backend
splits it into batches of `ASSAY_LLM_BATCH_SIZE`). Tool calls run between steps. A run that fails
(backend error, invalid output after its one retry, failed validation, tool error, timeout, an
exception in the task's own code) records its error and leaves the others untouched.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assay.agents.backends import Backend, GenerationRequest
from assay.agents.data_version import result_hash, still_current
from assay.agents.tasks.base import Final, OutputError, RunInput, RunState, Task, ToolCall, stable_hash
from assay.agents.tools import TOOLS, ReaderSession, ToolBox, ToolError
from assay.agents.tools.db import ROW_CAP, STATEMENT_TIMEOUT_MS

if TYPE_CHECKING:
    from assay.core.models import Encoder

log = logging.getLogger(__name__)


@dataclass
class TaskReport:
    task: str
    runs: list[RunState] = field(default_factory=list)
    cached: int = 0
    stale: int = 0  # cache hits whose data changed, so they ran again
    removed: int = 0  # answers deleted because their input no longer exists
    steps: int = 0
    generate_calls: int = 0
    generate_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def succeeded(self) -> int:
        return sum(r.status == "succeeded" for r in self.runs)

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.runs)

    @property
    def tokens_in(self) -> int:
        return sum(r.tokens_in for r in self.runs)

    @property
    def tokens_out(self) -> int:
        return sum(r.tokens_out for r in self.runs)

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second of generation (the model's share of the wall time)."""
        return self.tokens_out / self.generate_seconds if self.generate_seconds else 0.0

    @property
    def success_rate(self) -> float:
        return self.succeeded / len(self.runs) if self.runs else 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "cached": self.cached,
            "stale": self.stale,
            "removed": self.removed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "success_rate": round(self.success_rate, 4),
            "steps": self.steps,
            "generate_calls": self.generate_calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "seconds": round(self.seconds, 2),
        }


def run_lockstep(
    task: Task,
    inputs: Sequence[RunInput],
    backend: Backend,
    tools: ToolBox | None = None,
) -> TaskReport:
    """Run `task` on every input; returns every run's final state (none is left active)."""
    started = time.perf_counter()
    report = TaskReport(task.name)
    runs = [RunState(run_input) for run_input in inputs]
    report.runs = runs
    for run in runs:
        _guard(run, "start", task.start, run)

    limit = task.max_steps + 1  # one extra step for the single retry of an invalid output
    while active := [run for run in runs if run.status == "active"]:
        for run in active:
            if run.steps >= limit:
                run.fail(f"step limit: no final answer after {run.steps} steps")
            elif run.latency_s > task.timeout_s:
                run.fail(f"timeout: {run.latency_s:.0f} s > {task.timeout_s:.0f} s")
        active = [run for run in active if run.status == "active"]
        requests: list[GenerationRequest] = []
        stepping: list[RunState] = []
        for run in active:
            request = _guard(run, "prompt", task.request, run)
            if request is not None:
                requests.append(request)
                stepping.append(run)
        if not stepping:
            continue
        generated_at = time.perf_counter()
        outputs = backend.generate(requests)  # the one batched call of this step
        report.generate_seconds += time.perf_counter() - generated_at
        report.generate_calls += 1
        report.steps += 1

        calls: list[tuple[RunState, ToolCall]] = []
        for run, output in zip(stepping, outputs, strict=True):
            run.steps += 1
            run.tokens_in += output.tokens_in
            run.tokens_out += output.tokens_out
            run.trace.append(
                {
                    "step": run.steps,
                    "output": output.text,
                    "tokens_out": output.tokens_out,
                    "finish": output.finish_reason,
                }
            )
            if output.error:
                run.fail(f"backend: {output.error}")
                continue
            call = _guard(run, "reply", _advance, task, run, output.text)
            if call is not None:
                calls.append((run, call))

        # tools between steps: batched work for the whole step first (one model call to encode all
        # search queries), then each call on its own, a failing one failing only its run
        if tools is not None and calls:
            tools.prepare([(call.tool, call.arguments) for _, call in calls if call.tool in task.tools])
        for run, call in calls:
            if tools is None or call.tool not in task.tools:
                run.fail(f"tool {call.tool!r} is not available to task {task.name}")
                continue
            tool_started = time.perf_counter()
            try:
                result = tools.call(call.tool, call.arguments)
            except ToolError as exc:
                run.trace.append({"tool": call.tool, "arguments": call.arguments, "error": str(exc)})
                run.fail(f"tool {call.tool}: {exc}")
                continue
            except Exception as exc:  # a bug in a tool is still one run's failure
                log.exception("tool %s failed", call.tool)
                run.fail(f"tool {call.tool}: {type(exc).__name__}: {exc}")
                continue
            run.trace.append(
                {
                    "tool": call.tool,
                    "arguments": call.arguments,
                    "rows": len(result.get("rows", [])),
                    "result_hash": result_hash(result),
                    "ms": round(1000 * (time.perf_counter() - tool_started), 1),
                }
            )
            _guard(run, "observe", task.observe, run, call, result)

    report.seconds = time.perf_counter() - started
    return report


def _advance(task: Task, run: RunState, text: str) -> ToolCall | None:
    """Handle one reply: a tool call to make, a final answer, or one retry of an invalid reply."""
    try:
        step = task.parse(run, text)
        if isinstance(step, Final):
            citations = task.validate(run, step.answer)
            run.succeed(step.answer, citations)
            return None
        run.retrying = False
        return step
    except OutputError as exc:
        run.trace[-1]["invalid"] = str(exc)
        if run.retries_left <= 0:
            run.fail(f"invalid output after retry: {exc}")
            return None
        run.retries_left -= 1
        run.retrying = True
        run.messages.append({"role": "assistant", "content": text})
        run.messages.append({"role": "user", "content": task.retry_message(str(exc))})
        return None


def _guard(run: RunState, stage: str, function, *args):
    """Call the task's code for one run; an exception fails that run only."""
    try:
        return function(*args)
    except Exception as exc:
        log.debug("run %s failed in %s", run.key, stage, exc_info=True)
        run.fail(f"{stage}: {type(exc).__name__}: {exc}")
        return None


@dataclass
class TaskOutcome:
    """A task over all its inputs: what ran now, what came from the cache, and the inputs themselves."""

    report: TaskReport
    inputs: list[RunInput]
    cached: dict[str, dict[str, Any]]
    backend: str
    model: str
    device: str

    def answers(self) -> dict[str, dict[str, Any]]:
        """Every input's current answer (cached or new) by key; failed runs have none."""
        found = {key: hit["answer"] for key, hit in self.cached.items()}
        found.update({run.key: run.answer for run in self.report.runs if run.status == "succeeded"})
        return found

    def citations(self) -> dict[str, list[str]]:
        found = {key: list(hit["citations"]) for key, hit in self.cached.items()}
        found.update({run.key: run.citations for run in self.report.runs if run.status == "succeeded"})
        return found

    def metadata(self) -> dict[str, Any]:
        return {
            **self.report.summary(),
            "inputs": len(self.inputs),
            "backend": self.backend,
            "model": self.model,
            "device": self.device,
        }


def cache_key(task: Task, run_input: RunInput, prompt_hash: str, model_hash: str) -> str:
    return stable_hash(task.name, task.input_hash(run_input), prompt_hash, model_hash)


def run_task(
    task: Task,
    backend: Backend,
    postgres,
    *,
    limit: int | None = None,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    row_cap: int = ROW_CAP,
    encoders: Callable[[str], Encoder] | None = None,
) -> TaskOutcome:
    """Load the task's inputs, reuse cached answers, run the rest in lockstep and store every run.

    `encoders` gives the embedding model for search (default: `EmbeddingModelResource` following
    the settings); the model is loaded once per process and reused by every search of the run.
    """
    from assay.agents.store import AgentStore

    store = AgentStore(postgres)
    prompt_hash = task.prompt_hash()
    with ReaderSession(
        postgres.reader_url(), statement_timeout_ms=statement_timeout_ms, row_cap=row_cap, encoders=encoders
    ) as session:
        inputs = task.load_inputs(session, limit)
        keys = {i.key: cache_key(task, i, prompt_hash, backend.fingerprint) for i in inputs}
        hits = store.cached(task.name, keys)
        allowed = {name: TOOLS[name] for name in task.tools}
        toolbox = ToolBox(session, allowed)
        # a hit whose tool calls now return other rows read data that changed: it runs again
        stale = [key for key, hit in hits.items() if not still_current(toolbox, hit.pop("steps"))]
        for key in stale:
            del hits[key]
        todo = [i for i in inputs if i.key not in hits]
        report = run_lockstep(task, todo, backend, toolbox) if todo else TaskReport(task.name)
    report.cached = len(hits)
    report.stale = len(stale)
    if limit is None:  # the full input set: answers of inputs that are gone (a week no longer flagged)
        report.removed = store.prune(task.name, [i.key for i in inputs])
    batch_id = uuid.uuid4().hex
    store.record(
        [
            {
                "task": task.name,
                "input_key": run.key,
                "status": run.status,
                "answer": run.answer,
                "citations": run.citations,
                "steps": run.trace,
                "backend": backend.name,
                "model": backend.model_name,
                "device": backend.device,
                "input_hash": task.input_hash(run.input),
                "prompt_hash": prompt_hash,
                "model_hash": backend.fingerprint,
                "cache_key": keys[run.key],
                "tokens_in": run.tokens_in,
                "tokens_out": run.tokens_out,
                "latency_ms": round(1000 * run.latency_s, 1),
                "error": run.error,
                "batch_id": batch_id,
            }
            for run in report.runs
        ]
    )
    return TaskOutcome(report, inputs, hits, backend.name, backend.model_name, backend.device)

"""What every LLM backend takes and returns: one batched call per agent step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class Constraint:
    """Structured output: the text must be one of `value` (choice) or match a JSON schema."""

    kind: Literal["choice", "json_schema"]
    value: Any  # list[str] for choice, a JSON-schema dict for json_schema

    @classmethod
    def choice(cls, options: Sequence[str]) -> Constraint:
        return cls("choice", list(options))

    @classmethod
    def json_schema(cls, schema: dict[str, Any]) -> Constraint:
        return cls("json_schema", schema)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.kind, self.value], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class GenerationRequest:
    """One chat prompt of one run at one step. Greedy decoding everywhere: reruns are reproducible."""

    messages: tuple[dict[str, str], ...]
    max_new_tokens: int = 64
    constraint: Constraint | None = None
    min_new_tokens: int = 0  # > 0 only for benchmarks that need fixed output lengths


@dataclass
class Generation:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: str = "stop"  # stop | length | error
    error: str | None = None


@dataclass
class BackendStats:
    """Counters a runner and the tests read: one `generate` call per agent step is the contract."""

    generate_calls: int = 0
    model_calls: int = 0  # underlying model invocations (micro-batches on CPU, HTTP requests)
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)


@runtime_checkable
class Backend(Protocol):
    name: str  # transformers | vllm | openai
    model_name: str
    device: str
    fingerprint: str  # identifies the weights and decoding settings: part of every cache key
    stats: BackendStats

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One batched generation for all requests; a failed request comes back with `error` set."""
        ...

"""Any OpenAI-compatible chat-completions server (e.g. `vllm serve`), with bounded concurrency.

One agent step sends its requests concurrently (at most `max_concurrency` in flight); transient
failures (connection errors, 429, 5xx) are retried with exponential backoff; a request that still
fails comes back as that run's error. Structured outputs use the server's `response_format` (JSON
schema) or vLLM's `structured_outputs` extension (choice).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from assay.agents.backends.base import BackendStats, Generation, GenerationRequest

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRY_STATUS
    return isinstance(exc, httpx.TransportError)


def request_body(model: str, request: GenerationRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": list(request.messages),
        "max_tokens": request.max_new_tokens,
        "temperature": 0.0,
    }
    if request.min_new_tokens:
        body["min_tokens"] = request.min_new_tokens  # vLLM extension
    constraint = request.constraint
    if constraint is not None and constraint.kind == "choice":
        body["structured_outputs"] = {"choice": list(constraint.value)}  # vLLM extension
    elif constraint is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": constraint.value},
        }
    return body


class OpenAIBackend:
    name = "openai"
    device = "remote"

    def __init__(
        self,
        model: str | None,
        *,
        base_url: str | None,
        api_key: str | None = None,
        max_concurrency: int = 16,
        timeout_s: float = 120.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
    ):
        if not base_url or not model:
            raise ValueError("the openai backend needs ASSAY_LLM_BASE_URL and ASSAY_LLM_MODEL")
        self.model_name = model
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max(1, max_concurrency)
        self.fingerprint = f"openai:{self.base_url}:{model}|greedy"
        self.stats = BackendStats()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=self.max_concurrency),
        )
        self._retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff_s, max=30),
            reraise=True,
        )

    def _one(self, request: GenerationRequest) -> Generation:
        try:
            for attempt in self._retrying:
                with attempt:
                    self.stats.model_calls += 1
                    response = self._client.post(
                        "/chat/completions", json=request_body(self.model_name, request)
                    )
                    response.raise_for_status()
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Generation(
                choice["message"].get("content") or "",
                tokens_in=int(usage.get("prompt_tokens", 0)),
                tokens_out=int(usage.get("completion_tokens", 0)),
                finish_reason=choice.get("finish_reason") or "stop",
            )
        except Exception as exc:  # this run fails; the rest of the step goes on
            return Generation("", finish_reason="error", error=f"openai: {exc}")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        started = time.perf_counter()
        self.stats.generate_calls += 1
        self.stats.batch_sizes.append(len(requests))
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            results = list(pool.map(self._one, requests))
        for result in results:
            self.stats.tokens_in += result.tokens_in
            self.stats.tokens_out += result.tokens_out
        self.stats.seconds += time.perf_counter() - started
        return results

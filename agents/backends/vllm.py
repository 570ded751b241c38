"""vLLM offline engine on GPU: the whole agent step goes to `LLM.chat` in one call.

Written against vLLM's documented offline API (`vllm.LLM`, `SamplingParams`, `LLM.chat`,
`StructuredOutputsParams` for choice / JSON schema). vLLM is a CUDA package and an optional extra
(`pip install -e ".[gpu]"`); it is imported only when this backend is chosen. vLLM schedules the
batch itself (continuous batching up to `max_num_seqs`), so no batching happens here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from assay.agents.backends.base import BackendStats, Constraint, Generation, GenerationRequest


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise RuntimeError(
            "ASSAY_LLM_BACKEND=vllm needs vLLM (CUDA only): pip install -e '.[gpu]' on a GPU machine, "
            "or use ASSAY_LLM_BACKEND=transformers"
        ) from exc
    return vllm


def engine_arguments(
    model: str, *, tensor_parallel_size: int, gpu_memory_utilization: float, max_num_seqs: int
) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM`."""
    return {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "max_num_seqs": max_num_seqs,
        "seed": 0,
    }


def sampling_arguments(request: GenerationRequest) -> dict[str, Any]:
    """Keyword arguments of `SamplingParams` for one request, except the structured-output object."""
    return {
        "temperature": 0.0,  # greedy: reruns reproduce answers and cache keys stay meaningful
        "max_tokens": request.max_new_tokens,
        "min_tokens": request.min_new_tokens,
    }


def structured_arguments(constraint: Constraint | None) -> dict[str, Any] | None:
    """Keyword arguments of `StructuredOutputsParams`, or None for free text."""
    if constraint is None:
        return None
    if constraint.kind == "choice":
        return {"choice": list(constraint.value)}
    return {"json": constraint.value, "disable_any_whitespace": True}


class VLLMBackend:
    name = "vllm"
    device = "cuda"

    def __init__(
        self,
        model: str | None,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_num_seqs: int = 256,
    ):
        if not model:
            raise ValueError("ASSAY_LLM_MODEL must name the model vLLM loads (a hub id or a local folder)")
        self._vllm = _import_vllm()
        self.model_name = model
        arguments = engine_arguments(
            model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_num_seqs=max_num_seqs,
        )
        self.llm = self._vllm.LLM(**arguments)
        self.fingerprint = f"vllm:{model}|greedy"
        self.stats = BackendStats()

    def _sampling_params(self, request: GenerationRequest):
        from vllm.sampling_params import StructuredOutputsParams

        structured = structured_arguments(request.constraint)
        return self._vllm.SamplingParams(
            **sampling_arguments(request),
            structured_outputs=StructuredOutputsParams(**structured) if structured else None,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        started = time.perf_counter()
        self.stats.generate_calls += 1
        self.stats.model_calls += 1
        self.stats.batch_sizes.append(len(requests))
        try:
            outputs = self.llm.chat(
                [list(r.messages) for r in requests],
                sampling_params=[self._sampling_params(r) for r in requests],
                use_tqdm=False,
            )
        except Exception as exc:  # the engine failed the whole batch: every run records it
            return [Generation("", finish_reason="error", error=f"vllm: {exc}") for _ in requests]
        results = []
        for output in outputs:
            completion = output.outputs[0]
            tokens_in, tokens_out = len(output.prompt_token_ids or []), len(completion.token_ids)
            results.append(
                Generation(
                    completion.text,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    finish_reason=completion.finish_reason or "stop",
                )
            )
            self.stats.tokens_in += tokens_in
            self.stats.tokens_out += tokens_out
        self.stats.seconds += time.perf_counter() - started
        return results

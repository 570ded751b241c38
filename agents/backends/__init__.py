"""LLM backends behind one interface, chosen by `ASSAY_LLM_BACKEND` / `ASSAY_LLM_MODEL`.

This package is the one place that loads language models (`transformers.py` loads weights; `vllm.py`
hands the model name to vLLM; `openai.py` talks to a server that holds the model).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from agents.backends.base import Backend, BackendStats, Constraint, Generation, GenerationRequest

if TYPE_CHECKING:
    from orchestration.settings import Settings

__all__ = [
    "Backend",
    "BackendStats",
    "Constraint",
    "Generation",
    "GenerationRequest",
    "get_backend",
]


def get_backend(settings: Settings | None = None, **overrides) -> Backend:
    """The backend the settings ask for; loaded once per process and configuration."""
    from orchestration.settings import get_settings

    settings = settings or get_settings()
    options = {
        "backend": settings.llm_backend,
        "model": settings.llm_model,
        "device": settings.device,
        "batch_size": settings.llm_batch_size,
        "models_dir": str(settings.models_dir),
        "base_url": settings.llm_base_url,
        "api_key": settings.llm_api_key,
        "max_concurrency": settings.llm_max_concurrency,
        "tensor_parallel_size": settings.vllm_tensor_parallel_size,
        "gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
        "max_num_seqs": settings.vllm_max_num_seqs,
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    return _cached_backend(**options)


@functools.cache
def _cached_backend(*, backend: str, **options) -> Backend:
    if backend == "transformers":
        from agents.backends.transformers import TransformersBackend

        return TransformersBackend(
            options["model"],
            device=options["device"],
            batch_size=options["batch_size"],
            models_dir=options["models_dir"],
        )
    if backend == "vllm":
        from agents.backends.vllm import VLLMBackend

        return VLLMBackend(
            options["model"],
            tensor_parallel_size=options["tensor_parallel_size"],
            gpu_memory_utilization=options["gpu_memory_utilization"],
            max_num_seqs=options["max_num_seqs"],
        )
    if backend == "openai":
        from agents.backends.openai import OpenAIBackend

        return OpenAIBackend(
            options["model"],
            base_url=options["base_url"],
            api_key=options["api_key"],
            max_concurrency=options["max_concurrency"],
        )
    raise ValueError(f"unknown LLM backend {backend!r}: use transformers, vllm or openai")

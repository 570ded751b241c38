"""Embedding sync and search against their baselines, same texts, same model, same run.

    python bench/embeddings.py [--size default] [--limit 10000] [--batch-size 128] [--device auto]

1. Throughput: the embedding sync (`assets.embeddings.sync_embeddings`, what the
   `platinum/embeddings` asset runs) over `--limit` documents of the sample (all with --limit 0)
   into an empty corpus, against a bare `model.encode(texts, batch_size=B)` of the same texts.
   The bare call runs beside each of the sync's model calls (same chunk of texts, alternating
   which goes first) and its time is taken out of the sync's, so both sides see the same machine
   load - on a shared machine that load moves more than the effect being measured. Reported: the
   sync's encoding stage (everything but database work: chunking, deduplication, model calls)
   and the whole sync including diff, binary COPY, upsert, HNSW build and switch, as docs/s and
   as ratios to the bare encode.
2. Incremental: a rerun with nothing changed, and a rerun after changing the text of 1 % of the
   documents, against the full sync's time.
3. Search at the sample's full size, on a corpus of every document kept between runs (schema
   `bench_search`; only its first sync encodes everything): p50/p95 latency of vector, full-text
   and hybrid search over a query mix with and without filters, HNSW recall@10 against exact
   search, and nDCG@10 on the labelled relevance set.

With `--backends torch,onnx,onnx-int8` it compares the CPU encoding paths instead, on the same
`--limit` documents: docs/s of each (model calls interleaved chunk by chunk, rotating which goes
first, so all see the same load) and its ratio to torch; the cosine agreement of each path's
vectors with torch's; and, on a corpus of those documents per path, HNSW recall@10 and nDCG@10 of
vector and hybrid search on the labelled set; then the time a new process takes to load the cached
export of the last path (what every run's embedding step and every API process pay) against
loading the same model through sentence-transformers, alternating three times each.

With `--texts` it compares what the model reads, on the same `--limit` documents and the default
CPU path: each document's `body` (the baseline: a transaction's amount and date included) against
its `embed_text` (without them, what the pipeline embeds). Per variant, in two rounds alternating
which goes first, a full sync into an empty corpus of its own: distinct texts, seconds, docs/s and
the ratio to the baseline; then, on the last round's corpora, HNSW recall@10 and nDCG@10 of vector,
full-text and hybrid search on the labelled set.

Runs against its own ASSAY_HOME (default /tmp/assay-bench) and its own schemas.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# Measure the code of this checkout, even when another one is installed (editable) in the venv.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCHEMA = "bench_emb"  # throughput and incremental: rebuilt every run
SEARCH_SCHEMA = "bench_search"  # search: every document, kept between runs


class _PairedEncoder:
    """The sync's encoder, with a bare `model.encode()` of the same texts run beside every call.

    Pairing each chunk with its baseline (alternating which goes first) exposes both sides to the
    same machine load, which on a shared machine moves more than the effect being measured.
    """

    def __init__(self, encoder):
        self._encoder = encoder
        self.bare_s = self.sync_s = 0.0
        self.texts = self.calls = 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_documents(self, texts: list[str]):
        def bare() -> None:
            started = time.perf_counter()
            self._encoder.model.encode(texts, batch_size=self._encoder.batch_size, show_progress_bar=False)
            self.bare_s += time.perf_counter() - started

        self.calls += 1
        self.texts += len(texts)
        if self.calls % 2:
            bare()
        started = time.perf_counter()
        vectors = self._encoder.encode_documents(texts)
        self.sync_s += time.perf_counter() - started
        if not self.calls % 2:
            bare()
        return vectors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="default", help="sample size: small, default, large or a number")
    parser.add_argument(
        "--limit", type=int, default=10_000, help="documents for the throughput part (0: all)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--searches", type=int, default=300, help="timed searches per mode")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench"))
    parser.add_argument("--backends", help="compare CPU paths only, e.g. torch,onnx,onnx-int8")
    parser.add_argument("--texts", action="store_true", help="compare the body against embed_text only")
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home
    if args.backends:
        _compare_backends(args)
        return
    if args.texts:
        _compare_texts(args)
        return

    from assay.core.database import PostgresResource
    from assay.core.models import EmbeddingModelResource
    from assay.search.index import sync_embeddings

    home = Path(args.home)
    postgres = PostgresResource()
    _prepare_documents(home, args.size, postgres)
    resource = EmbeddingModelResource(device=args.device, batch_size=args.batch_size)
    encoder = resource.encoder()
    print(f"model {encoder.name} on {encoder.device}, batch size {encoder.batch_size}", flush=True)

    with postgres.connect(autocommit=True) as conn:
        total_docs = conn.execute("select count(*) from platinum.documents").fetchone()[0]
        limit = args.limit or total_docs
        conn.execute(f"drop schema if exists {SCHEMA} cascade")
        conn.execute(f"create schema {SCHEMA}")
        # a fixed pseudo-random subset, so it covers every category, month and vendor
        conn.execute(
            f"create table {SCHEMA}.documents as"
            " select * from platinum.documents order by md5(doc_id) limit %s",
            [limit],
        )
        n = conn.execute(f"select count(*) from {SCHEMA}.documents").fetchone()[0]
        print(f"{n:,} documents of {total_docs:,} for the throughput part", flush=True)
        warm = [r[0] for r in conn.execute(f"select body from {SCHEMA}.documents limit 256")]
        encoder.encode_documents(warm)  # first calls allocate

        paired = _PairedEncoder(encoder)
        full = sync_embeddings(conn, paired, schema=SCHEMA, source=(SCHEMA, "documents"))
        assert full.texts_encoded == n == paired.texts, "every text is encoded once by each side"
        full_s = full.total_seconds - paired.bare_s  # the sync's own time: the bare calls taken out
        db_s = sum(full.seconds[k] for k in ("diff", "write", "index", "switch"))
        bare_rate, stage_rate, whole_rate = n / paired.bare_s, n / (full_s - db_s), n / full_s

        unchanged = sync_embeddings(conn, encoder, schema=SCHEMA, source=(SCHEMA, "documents"))
        changed_n = max(1, n // 100)
        conn.execute(
            f"update {SCHEMA}.documents"
            " set body = body || ' (amended)', content_hash = md5(content_hash || 'a')"
            f" where doc_id in (select doc_id from {SCHEMA}.documents order by md5(doc_id || 'x') limit %s)",
            [changed_n],
        )
        one_percent = sync_embeddings(conn, encoder, schema=SCHEMA, source=(SCHEMA, "documents"))

        # Search works on its own corpus of every document, kept between runs: after the first run
        # its sync is incremental and encodes (almost) nothing.
        conn.execute(f"create schema if not exists {SEARCH_SCHEMA}")
        conn.execute(f"drop table if exists {SEARCH_SCHEMA}.documents")
        conn.execute(f"create table {SEARCH_SCHEMA}.documents as select * from platinum.documents")
        print(f"syncing the search corpus ({total_docs:,} documents) ...", flush=True)
        grow = sync_embeddings(conn, encoder, schema=SEARCH_SCHEMA, source=(SEARCH_SCHEMA, "documents"))
        search = _search_latency(conn, resource, args.searches)
        quality = _quality(conn, resource, home)

    s = full.seconds
    load = os.getloadavg()
    print()
    print(f"## Embedding throughput ({n:,} documents, {encoder.device}, batch {encoder.batch_size})")
    print(f"(load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs)")
    print(f"bare model.encode():            {bare_rate:7.1f} docs/s ({paired.bare_s:.1f}s, paired per chunk)")
    print(
        f"sync, encoding stage:           {stage_rate:7.1f} docs/s  "
        f"ratio {stage_rate / bare_rate:.2f} (>= 0.9)"
    )
    print(
        f"sync, whole (incl. DB + index): {whole_rate:7.1f} docs/s  "
        f"ratio {whole_rate / bare_rate:.2f} (>= 0.8)"
    )
    print(
        f"  sync seconds: total {full_s:.2f} = encoding stage {full_s - db_s:.2f} (model calls "
        f"{paired.sync_s:.2f}) + "
        + " + ".join(f"{k} {s[k]:.2f}" for k in ("diff", "write", "index", "switch"))
    )
    print("## Incremental")
    print(f"rerun, nothing changed:  {unchanged.total_seconds:6.2f}s, embedded {unchanged.embedded}")
    print(
        f"rerun, 1 % changed ({one_percent.changed} docs): {one_percent.total_seconds:6.2f}s = "
        f"{100 * one_percent.total_seconds / full_s:.2f} % of the full sync (<= 3 %)"
    )
    print("  1 % rerun seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in one_percent.seconds.items()))
    print(
        f"search corpus sync: {grow.new:,} new, {grow.changed:,} changed, {grow.skipped:,} unchanged "
        f"in {grow.total_seconds:.1f}s (index {'built' if grow.index_built else 'kept'})"
    )
    print(f"## Search over {total_docs:,} documents ({args.searches} searches per mode and filter set)")
    for line in search:
        print(line)
    for line in quality:
        print(line)


def _prepare_documents(home: Path, size: str, postgres) -> None:
    """Sample + bronze + dbt, once per home: platinum.documents is what the benchmark reads."""
    from dagster import materialize

    from assay.assets.bronze import bronze_assets
    from assay.assets.dbt import dbt_models, dbt_resource
    from assay.landing.sample import generate
    from assay.orchestration.pipeline import full_range_tags

    size_arg = int(size) if size.isdigit() else size
    marker = home / f".documents-{size}"
    if marker.exists():
        return
    print(f"generating the {size} sample and running bronze + dbt in {home} ...", flush=True)
    generate(home / "landing", home / "ground_truth", size=size_arg, seed=42)
    result = materialize(
        [*bronze_assets, *dbt_models],
        resources={"postgres": postgres, "dbt": dbt_resource()},
        tags=full_range_tags(postgres),  # every day of the sample's daily partitions in one run
    )
    if not result.success:
        raise SystemExit("the pipeline up to platinum.documents failed")
    marker.touch()


def _search_latency(conn, resource, n: int) -> list[str]:
    from assay.search.relevance import RELEVANCE_QUERIES
    from assay.search.searcher import Filters, Searcher

    searcher = Searcher(conn, resource.encoder_for, schema=SEARCH_SCHEMA)
    queries = [q.text for q in RELEVANCE_QUERIES] + [
        "taxi London",
        "annual software renewal",
        "dinner with candidate",
        "monitor for the office",
    ]
    vendor = conn.execute(
        f"select vendor_id from {SEARCH_SCHEMA}.documents group by 1 order by count(*), 1 limit 1 offset 10"
    ).fetchone()[0]
    filter_sets = {
        "none": Filters(),
        "category": Filters(category="travel"),
        "dept+quarter": Filters(department="Sales", date_from=date(2025, 4, 1), date_to=date(2025, 6, 30)),
        "vendor (rare)": Filters(vendor_id=vendor),
    }
    searcher.search(queries[0], "hybrid")  # warm-up: model load and caches
    lines = [
        "| filter | mode | p50 ms | p95 ms | mean hits | exact fallback |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, filters in filter_sets.items():
        for mode in ("vector", "fulltext", "hybrid"):
            times, hits, fallbacks = [], [], 0
            for i in range(n):
                started = time.perf_counter()
                result = searcher.search(queries[i % len(queries)], mode, k=10, filters=filters)
                times.append(1000 * (time.perf_counter() - started))
                hits.append(len(result.hits))
                fallbacks += result.exact_fallback
            p50, p95 = statistics.quantiles(times, n=20)[9], statistics.quantiles(times, n=20)[18]
            lines.append(
                f"| {name} | {mode} | {p50:.1f} | {p95:.1f} | {statistics.mean(hits):.1f} | {fallbacks}/{n} |"
            )
    return lines


def _quality(conn, resource, home: Path) -> list[str]:
    from assay.search.relevance import evaluate_relevance, graded_relevance, hnsw_recall
    from assay.search.searcher import Searcher

    recall = hnsw_recall(conn, schema=SEARCH_SCHEMA, queries=200)
    lines = [
        f"HNSW recall@10 vs exact: {recall.recall:.4f} "
        f"(min {recall.min_recall:.2f}, {recall.queries} queries)"
    ]
    truth = home / "ground_truth" / "transactions.csv"
    graded = graded_relevance(conn, truth, schema=SEARCH_SCHEMA)
    report = evaluate_relevance(Searcher(conn, resource.encoder_for, schema=SEARCH_SCHEMA), graded)
    m = report.mean_ndcg
    lines.append(
        f"nDCG@10 (labelled set, {len(graded)} queries): vector {m['vector']:.3f}, "
        f"full-text {m['fulltext']:.3f}, hybrid {m['hybrid']:.3f}"
    )
    return lines


def _compare_backends(args) -> None:
    import numpy as np

    from assay.core.database import PostgresResource
    from assay.core.models import EmbeddingModelResource
    from assay.search.index import EMBED_TEXT, sync_embeddings
    from assay.search.relevance import evaluate_relevance, graded_relevance, hnsw_recall
    from assay.search.searcher import Searcher

    home, postgres = Path(args.home), PostgresResource()
    _prepare_documents(home, args.size, postgres)
    backends = args.backends.split(",")
    resources = {
        b: EmbeddingModelResource(device="cpu", backend=b, batch_size=args.batch_size) for b in backends
    }
    encoders = {b: r.encoder_for(r.model_name()) for b, r in resources.items()}
    with postgres.connect(autocommit=True) as conn:
        texts = [
            r[0]
            for r in conn.execute(
                f"select {EMBED_TEXT} from platinum.documents order by md5(doc_id) limit %s",
                [args.limit or None],
            )
        ]
        print(f"{len(texts):,} documents; paths {', '.join(f'{b}={e.name}' for b, e in encoders.items())}")
        for encoder in encoders.values():
            encoder.encode_documents(texts[:256])  # first calls allocate
        seconds = dict.fromkeys(backends, 0.0)
        vectors: dict[str, list] = {b: [] for b in backends}
        for i, start in enumerate(range(0, len(texts), 512)):
            chunk = texts[start : start + 512]
            for b in backends[i % len(backends) :] + backends[: i % len(backends)]:
                started = time.perf_counter()
                vectors[b].append(encoders[b].encode_documents(chunk))
                seconds[b] += time.perf_counter() - started
        exact = np.concatenate(vectors[backends[0]])
        quality = {}
        for b in backends:
            schema = f"bench_path_{b.replace('-', '_')}"
            _scratch_documents(conn, schema, args.limit)
            sync_embeddings(conn, encoders[b], schema=schema, source=(schema, "documents"))
            graded = graded_relevance(conn, home / "ground_truth" / "transactions.csv", schema=schema)
            report = evaluate_relevance(Searcher(conn, resources[b].encoder_for, schema=schema), graded)
            quality[b] = (hnsw_recall(conn, schema=schema, queries=200).recall, report.mean_ndcg)
    loading = _load_times(resources[backends[-1]]) if backends[-1].startswith("onnx") else ""
    load = os.getloadavg()
    print(f"\n## Embedding paths on CPU ({len(texts):,} documents, batch {args.batch_size})")
    print(f"(load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs)")
    columns = ["path", "docs/s", "ratio to torch", "cosine to torch min / mean", "HNSW recall@10"]
    print("| " + " | ".join([*columns, "nDCG@10 vector", "hybrid"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for b in backends:
        cosine = (exact * np.concatenate(vectors[b])).sum(axis=1)
        recall, ndcg = quality[b]
        print(
            f"| {b} | {len(texts) / seconds[b]:.1f} | {seconds[backends[0]] / seconds[b]:.2f} | "
            f"{cosine.min():.4f} / {cosine.mean():.4f} | {recall:.4f} | "
            f"{ndcg['vector']:.3f} | {ndcg['hybrid']:.3f} |"
        )
    print(loading)


def _scratch_documents(conn, schema: str, limit: int) -> None:
    """A new schema holding `limit` documents (0: all), a fixed pseudo-random subset of platinum's."""
    conn.execute(f"drop schema if exists {schema} cascade")
    conn.execute(f"create schema {schema}")
    conn.execute(
        f"create table {schema}.documents as select * from platinum.documents order by md5(doc_id) limit %s",
        [limit or None],
    )


def _compare_texts(args, rounds: int = 2) -> None:
    from assay.core.database import PostgresResource
    from assay.core.models import EmbeddingModelResource
    from assay.search.index import sync_embeddings
    from assay.search.relevance import evaluate_relevance, graded_relevance, hnsw_recall
    from assay.search.searcher import Searcher

    home, postgres = Path(args.home), PostgresResource()
    _prepare_documents(home, args.size, postgres)
    resource = EmbeddingModelResource(device="cpu", batch_size=args.batch_size)
    encoder = resource.encoder()
    variants = ["body", "embed_text"]  # the column the model reads; the body is the baseline
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    distinct: dict[str, int] = {}
    with postgres.connect(autocommit=True) as conn:
        encoder.encode_documents(["warm"])  # the first call allocates
        for r in range(rounds):
            for variant in variants[r % 2 :] + variants[: r % 2]:
                schema = f"bench_text_{variant}"
                _scratch_documents(conn, schema, args.limit)
                # the corpus reads the column `embed_text`: the baseline puts the body there
                conn.execute(f"update {schema}.documents set embed_text = {variant}")
                stats = sync_embeddings(conn, encoder, schema=schema, source=(schema, "documents"))
                seconds[variant].append(stats.total_seconds)
                distinct[variant] = stats.texts_encoded
        documents = stats.documents
        quality = {}
        for variant in variants:
            schema = f"bench_text_{variant}"
            graded = graded_relevance(conn, home / "ground_truth" / "transactions.csv", schema=schema)
            report = evaluate_relevance(Searcher(conn, resource.encoder_for, schema=schema), graded)
            quality[variant] = (hnsw_recall(conn, schema=schema, queries=200).recall, report.mean_ndcg)
    load = os.getloadavg()
    print(f"\n## What the model reads ({documents:,} documents, {encoder.name}, batch {args.batch_size})")
    print(f"(load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs)")
    print(
        "| text | distinct texts | sync s (rounds) | docs/s | ratio to body | HNSW recall@10 "
        "| nDCG@10 vector | full-text | hybrid |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base = statistics.mean(seconds["body"])
    for variant in variants:
        mean = statistics.mean(seconds[variant])
        recall, ndcg = quality[variant]
        print(
            f"| {variant} | {distinct[variant]:,} | {' / '.join(f'{s:.1f}' for s in seconds[variant])} | "
            f"{documents / mean:.1f} | {base / mean:.2f} | {recall:.4f} | {ndcg['vector']:.3f} | "
            f"{ndcg['fulltext']:.3f} | {ndcg['hybrid']:.3f} |"
        )


_LOAD_ENCODER = """
import sys, time
started = time.perf_counter()
from assay.core.models import EmbeddingModelResource
resource = EmbeddingModelResource(device="cpu", backend=sys.argv[1])
resource.encoder_for(resource.model_name()).encode_documents(["warm"])
print(time.perf_counter() - started)
"""
_LOAD_TORCH = """
import sys, time
started = time.perf_counter()
import onnxruntime
from sentence_transformers import SentenceTransformer
from assay.core.models import model_source
SentenceTransformer(model_source(sys.argv[1]), device="cpu", local_files_only=True).tokenizer(["warm"])
print(time.perf_counter() - started)
"""


def _load_times(resource, rounds: int = 3) -> str:
    """Loading the cached export in a new process (what every run's embedding step and every API
    process pay) against loading the same model's tokenizer through sentence-transformers, as the
    ONNX path did before it saved the tokenizer beside the export; alternating, same run."""
    import subprocess

    from assay.core.models import DEFAULT_EMBEDDING_MODEL

    backend = resource.backend
    times: dict[str, list[float]] = {"export": [], "sentence-transformers": []}
    for _ in range(rounds):
        for label, code, arg in (
            ("export", _LOAD_ENCODER, backend),
            ("sentence-transformers", _LOAD_TORCH, DEFAULT_EMBEDDING_MODEL),
        ):
            command = [sys.executable, "-c", code, arg]
            run = subprocess.run(command, capture_output=True, text=True, check=True)
            times[label].append(float(run.stdout.split()[-1]))
    ours, theirs = statistics.median(times["export"]), statistics.median(times["sentence-transformers"])
    return (
        f"loading the cached {backend} export in a new process: {ours:.2f} s (median of {rounds}); "
        f"through sentence-transformers (torch, transformers) as before: {theirs:.2f} s; "
        f"ratio {theirs / ours:.1f}x"
    )


if __name__ == "__main__":
    main()

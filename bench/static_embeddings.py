"""A static embedding model distilled offline from the shipped one, against the default CPU path.

    pip install --no-deps model2vec==0.10.0 skeletoken==0.6.1   # bench only, see below
    python bench/static_embeddings.py [--size small] [--pca-dims 256]

Issue 14 asks for the measured alternatives when the fastest exact CPU path cannot make a first
run fit in three minutes. A static model (model2vec) replaces the transformer by one vector per
token, distilled from the shipped all-MiniLM-L6-v2 without any download: each vocabulary token is
encoded once by the model (about 30k tokens), then reduced by PCA. Encoding a document is then a
mean of token vectors: no attention, no matrix products per token.

Same documents, same run, same server: distillation time, docs/s of each path's encoding, the whole
sync (encode, COPY, HNSW build), HNSW recall@10 and nDCG@10 of vector, full-text and hybrid search
on the labelled relevance set (as `bench/embeddings.py --backends`).

model2vec's `distill` extra pins transformers below the version sentence-transformers 5 needs, so it
is installed without its dependencies for this benchmark; assay itself does not depend on it.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


class _Static:
    """A model2vec StaticModel behind the `encode()` that assay's Encoder calls."""

    def __init__(self, model) -> None:
        self.model = model

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.model.dim)

    def encode(self, texts, batch_size=1024, normalize_embeddings=False, **_) -> np.ndarray:
        vectors = self.model.encode(texts, batch_size=batch_size).astype(np.float32)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small", help="sample size: small, default, large or a number")
    parser.add_argument("--pca-dims", type=int, default=256, help="dimensions kept by the distillation")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench-static"))
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from model2vec.distill import distill
    except ImportError:
        raise SystemExit(
            "needs model2vec: pip install --no-deps model2vec==0.10.0 skeletoken==0.6.1"
        ) from None

    from embeddings import _prepare_documents

    from assay.core.database import PostgresResource
    from assay.core.models import EmbeddingModelResource, Encoder, model_source
    from assay.search.index import EMBED_TEXT, sync_embeddings
    from assay.search.relevance import evaluate_relevance, graded_relevance, hnsw_recall
    from assay.search.searcher import Searcher

    home, postgres = Path(args.home), PostgresResource()
    _prepare_documents(home, args.size, postgres)
    resource = EmbeddingModelResource(device="cpu", backend="onnx-int8")
    default = resource.encoder_for(resource.model_name())
    started = time.perf_counter()
    static = distill(model_name=model_source(default.name.split("#")[0]), pca_dims=args.pca_dims)
    distill_s = time.perf_counter() - started
    encoders = {
        "onnx-int8 (default)": default,
        f"static, {args.pca_dims} dims": Encoder("static", _Static(static), "cpu", 1024, False),
    }
    rows = []
    with postgres.connect(autocommit=True) as conn:
        texts = [r[0] for r in conn.execute(f"select {EMBED_TEXT} from platinum.documents")]
        for i, (label, encoder) in enumerate(encoders.items()):
            encoder.encode_documents(texts[:256])  # first calls allocate
            started = time.perf_counter()
            encoder.encode_documents(texts)
            encode_s = time.perf_counter() - started
            schema = f"bench_static_{i}"
            conn.execute(f"drop schema if exists {schema} cascade")
            conn.execute(f"create schema {schema}")
            conn.execute(f"create table {schema}.documents as select * from platinum.documents")
            started = time.perf_counter()
            sync_embeddings(conn, encoder, schema=schema, source=(schema, "documents"))
            sync_s = time.perf_counter() - started
            graded = graded_relevance(conn, home / "ground_truth" / "transactions.csv", schema=schema)
            report = evaluate_relevance(Searcher(conn, lambda _, e=encoder: e, schema=schema), graded)
            recall = hnsw_recall(conn, schema=schema, queries=200).recall
            rows.append((label, len(texts) / encode_s, sync_s, recall, report.mean_ndcg))
    load = os.getloadavg()
    print(f"\n## Static vs default embeddings ({len(texts):,} documents of the {args.size} sample)")
    print(f"distillation (once, cached in a real integration): {distill_s:.1f} s")
    print(f"(load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs)")
    print("| path | docs/s | ratio | whole sync s | HNSW recall@10 | nDCG@10 vector | full-text | hybrid |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, rate, sync_s, recall, ndcg in rows:
        print(
            f"| {label} | {rate:,.0f} | {rate / rows[0][1]:.1f} | {sync_s:.1f} | {recall:.3f} | "
            f"{ndcg['vector']:.3f} | {ndcg['fulltext']:.3f} | {ndcg['hybrid']:.3f} |"
        )


if __name__ == "__main__":
    main()

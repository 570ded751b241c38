"""Latency of Ask assay, warm: the evaluation set's questions answered one after another.

    ASSAY_HOME=... python bench/ask.py [--repeat 5]

Needs a built pipeline in $ASSAY_HOME (`assay run`). "Warm" is what `assay ask` does after start-up
and what `POST /v1/ask` does per request: the semantic layer, the dimensions' values and the reader
connection are loaded once, then each question is parsed, compiled, run and rendered. Printed: p50 and
p95 per question in ms (target p95 <= 2000 ms on 2 CPU cores), and the ratio to the baseline measured
in the same run, the compiled SQL of the same questions run directly on the same connection (what the
question path adds on top of the database).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Passes over the evaluation set.")
    args = parser.parse_args()

    from assay.agents.ask import Asker
    from assay.agents.ask_eval import QUESTIONS, WRITTEN_ON
    from assay.agents.tools.db import ReaderSession
    from assay.core.database import PostgresResource

    with ReaderSession(PostgresResource().reader_url()) as session:
        started = time.perf_counter()
        asker = Asker(session, today=WRITTEN_ON["original"])
        print(f"warm-up (layer, dimension values): {1000 * (time.perf_counter() - started):.0f} ms")
        asked, direct = [], []
        for _ in range(args.repeat):
            for case in QUESTIONS:
                t0 = time.perf_counter()
                answer = asker.ask(case.question)
                asked.append(time.perf_counter() - t0)
                if answer.sql is not None:
                    t0 = time.perf_counter()
                    session.query(answer.sql, answer.params)
                    direct.append(time.perf_counter() - t0)
    p50, p95 = (1000 * _quantile(asked, q) for q in (0.5, 0.95))
    d50, d95 = (1000 * _quantile(direct, q) for q in (0.5, 0.95))
    print(f"questions: {len(asked)} ({len(QUESTIONS)} x {args.repeat})")
    print(f"ask assay      p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   (target p95 <= 2000 ms)")
    print(f"SQL alone      p50 {d50:8.1f} ms   p95 {d95:8.1f} ms   (baseline)")
    print(f"ratio p95 ask / SQL alone: {p95 / d95:.1f}x")


if __name__ == "__main__":
    main()

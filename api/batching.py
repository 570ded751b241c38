"""Micro-batching of search queries: the queries of concurrent requests go to the model in one call.

A CPU encoder spends most of a single short query's time in fixed per-call costs, so one call for
twenty queries costs little more than one call for one. `QueryBatcher.encode(text)` queues the text
and awaits its vector; one drain task at a time takes everything queued (up to `max_batch`), encodes
it in a worker thread in one call and hands each request its vector. Nothing waits for a batch to
fill: with one request in flight it is encoded at once, and under load the requests that arrive while
a batch is encoding form the next one. Encoding happens before the search takes a database
connection, so a request waiting for its batch holds none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np


class QueryBatcher:
    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_batch: int = 64) -> None:
        self._encode = encode
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future]] = []
        self._draining = False
        self.calls = 0  # model calls made (for tests and the benchmark)
        self.encoded = 0  # queries encoded

    async def encode(self, text: str) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                texts = list(dict.fromkeys(text for text, _ in batch))
                try:
                    vectors = await asyncio.to_thread(self._encode, texts)
                except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.calls += 1
                self.encoded += len(texts)
                by_text = dict(zip(texts, vectors, strict=True))
                for text, future in batch:
                    if not future.done():  # its request may have gone away
                        future.set_result(by_text[text])
        finally:
            self._draining = False


class PrecomputedEncoder:
    """An `Encoder` stand-in for one search: the query vectors computed already (by the batcher) for
    `model`; any other text, or the documents, go to the real encoder."""

    def __init__(self, encoder, vectors: dict[str, np.ndarray]) -> None:
        self._encoder = encoder
        self._vectors = vectors

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if all(text in self._vectors for text in texts):
            return np.stack([self._vectors[text] for text in texts])
        return self._encoder.encode_queries(list(texts))

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)

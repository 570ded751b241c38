"""Response compression: br (Brotli) where the client accepts it and the `brotli` package is installed
(the `api` extra declares it), else gzip, else none.

`negotiate` reads `Accept-Encoding` with its q-values (`br;q=0` refuses br) and prefers br over gzip
when both are accepted: about a fifth smaller on the API's JSON at a similar cost. The mart routes
compress each cached body once per encoding (`assay.api.cache.Cached`); `CompressionMiddleware` does
the rest (JSON endpoints, exports) as Starlette's GZipMiddleware does, with a Brotli responder beside
its gzip one.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.middleware.gzip import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    GZipMiddleware,
    GZipResponder,
    IdentityResponder,
)
from starlette.types import ASGIApp, Receive, Scope, Send

try:
    import brotli
except ImportError:  # an install without the api extra's brotli: gzip only
    brotli = None

BROTLI_QUALITY = 5  # 0-11; 5 compresses at gzip-6 speed, smaller (bench/api.py prints both sizes)
GZIP_LEVEL = 6
MIN_BYTES = 1000  # smaller bodies go out as they are
THREAD_MIN_BYTES = 128 * 1024  # larger chunks are compressed in a worker thread, off the event loop
# already compressed (zstd inside): sent as it is
EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.apache.parquet")


def available() -> tuple[str, ...]:
    return ("br", "gzip") if brotli is not None else ("gzip",)


def negotiate(accept_encoding: str) -> str | None:
    """The encoding to answer with: br, gzip or None (identity), by the client's q-values; br wins a tie."""
    if not accept_encoding:
        return None
    quality: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        q = 1.0
        params = params.strip().replace(" ", "")
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        quality[name.strip().lower()] = q
    best, best_q = None, 0.0
    for encoding in available():
        q = quality.get(encoding, quality.get("*", 0.0))
        if q > best_q:
            best, best_q = encoding, q
    return best


def brotli_compress(body: bytes) -> bytes:
    assert brotli is not None
    return brotli.compress(body, quality=BROTLI_QUALITY)


class BrotliResponder(IdentityResponder):
    content_encoding = "br"

    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        super().__init__(app, minimum_size, exclude_content_types=EXCLUDED)
        self._compressor = None

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        if len(body) >= THREAD_MIN_BYTES:
            return await anyio.to_thread.run_sync(self._compress, body, more_body)
        return self._compress(body, more_body)

    def _compress(self, body: bytes, more_body: bool) -> bytes:
        if self._compressor is None:
            self._compressor = brotli.Compressor(quality=BROTLI_QUALITY)
        out = self._compressor.process(body)
        # a streamed chunk is flushed so the client can decode it now; the last one ends the stream
        return out + (self._compressor.flush() if more_body else self._compressor.finish())


class CompressionMiddleware(GZipMiddleware):
    """Starlette's GZipMiddleware, answering br instead where `negotiate` chooses it."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(
            app,
            minimum_size=MIN_BYTES,
            compresslevel=GZIP_LEVEL,
            thread_minimum_size=THREAD_MIN_BYTES,
            exclude_content_types=EXCLUDED,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = negotiate(Headers(scope=scope).get("accept-encoding", ""))
        responder: ASGIApp
        if encoding == "br":
            responder = BrotliResponder(self.app, self.minimum_size)
        elif encoding == "gzip":
            responder = GZipResponder(
                self.app,
                self.minimum_size,
                self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=EXCLUDED,
            )
        else:
            responder = IdentityResponder(self.app, self.minimum_size, exclude_content_types=EXCLUDED)
        await responder(scope, receive, send)

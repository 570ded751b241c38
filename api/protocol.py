"""uvicorn's httptools protocol with caps on the request head, enforced before the app sees a request.

uvicorn and httptools put no limit on a request line or header: httptools grows each one by bytes
concatenation as the chunks arrive, so one 50 MB header costs quadratic copying on the event loop and
stalls every other connection for seconds (`/health/live` went from 20 ms to 3.9 s). This protocol
counts the bytes of the head as they arrive and refuses, with a problem+json answer and a closed
connection, a request target longer than `max_url_bytes` (414), a head whose header lines exceed
`max_header_bytes` (431) or more than `max_headers` header lines (431), before the parser has to hold
more than that. Pure socket-level work: no ASGI app, key lookup or database is involved.

The limits come from `ApiSettings` (`ASSAY_API_MAX_URL_BYTES`, `..._MAX_HEADER_BYTES`,
`..._MAX_HEADERS`), and so does the time a request may take to arrive
(`ASSAY_API_REQUEST_READ_TIMEOUT_S`): uvicorn has no such timeout (its keep-alive timer runs only
between requests), so a connection that sends half a head, or a body it announced, and then nothing
held its socket for ever: 20,000 of them took every file descriptor and the API answered nobody.
`assay serve` passes the class to uvicorn (`http=`), and each worker reads the
same settings from its environment.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from assay.api.errors import PROBLEM_JSON, SECURITY_HEADERS
from assay.core.settings import ApiSettings, get_settings

LINGER_S = 2.0
MALFORMED = "not a valid HTTP/1.1 request: check the request line, the header syntax and the framing"


@dataclass(frozen=True)
class HeadLimits:
    max_url_bytes: int
    max_header_bytes: int
    max_headers: int
    read_timeout_s: float = 10.0

    @classmethod
    def of(cls, settings: ApiSettings) -> HeadLimits:
        return cls(
            settings.max_url_bytes,
            settings.max_header_bytes,
            settings.max_headers,
            settings.request_read_timeout_s,
        )


@functools.cache
def _configured() -> HeadLimits:
    return HeadLimits.of(get_settings().api)


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def refusal(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    body = orjson.dumps({"title": HTTPStatus(status).phrase, "status": status, "detail": detail})
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode(),
        b"content-type: " + PROBLEM_JSON.encode(),
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
        *(name + b": " + value for name, value in SECURITY_HEADERS),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that refuses oversized request heads and requests that do not arrive in
    time (see the module docstring)."""

    limits: HeadLimits | None = None  # None: from the settings (a subclass may fix its own)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits or _configured()
        self._max_url = limits.max_url_bytes
        self._max_headers = limits.max_headers
        # the head beyond its request target: method, version, the header lines and the blank line
        self._max_rest = limits.max_header_bytes + 64
        self._in_head = True
        self._head_bytes = self._url_bytes = 0
        self._header_count = 0
        self._refusal: _Refused | None = None
        self._read_timeout = limits.read_timeout_s
        self._read_timer: asyncio.TimerHandle | None = None

    # the time a request may take to arrive --------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_read_timer()  # until the first request has arrived (no keep-alive timer yet)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_timer()
        super().connection_lost(exc)

    def _start_read_timer(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self._read_timeout, self._read_timed_out)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self._refusal is not None:
            return  # refused already, and closing
        if not self._in_head and self.cycle.response_started:
            self.transport.close()  # answered already, without the body it waits for: let go
            return
        detail = f"the request did not arrive whole within {self._read_timeout:g} s"
        self._refuse(_Refused(408, detail))

    # parser callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_read_timer()  # a later request on the connection: from its first byte
        self._in_head = True
        self._header_count = 0
        self._url_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self._max_url:
            self._refusal = _Refused(414, f"request target longer than {self._max_url} bytes")
            raise self._refusal
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._max_headers:
            self._refusal = _Refused(431, f"more than {self._max_headers} header lines")
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_read_timer()
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = self._url_bytes = 0

    # input ------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: the rest of the request is read and dropped until the connection closes
        while data and self._refusal is None and self.parser is not None:
            if not self._in_head:
                super().data_received(data)
                return
            # the target is capped by on_url as it arrives; the rest of the head here
            room = self._url_bytes + self._max_rest - self._head_bytes
            if room <= 0:
                detail = f"request headers larger than {self._max_rest - 64} bytes"
                self._refuse(_Refused(431, detail))
                return
            # feed at most what the head may still take; the rest once the head has ended
            part, data = data[:room], data[room:]
            self._head_bytes += len(part)
            super().data_received(part)  # a refusal in a callback ends in send_400_response

    def send_400_response(self, msg: str) -> None:
        # a refusal raised in a callback, or what the parser could not read: uvicorn's own answer
        # to that is text/plain without the security headers
        self._refuse(self._refusal or _Refused(400, MALFORMED))

    def _refuse(self, refused: _Refused) -> None:
        self._refusal = refused
        self._stop_read_timer()
        self.logger.warning("refused a request: %s", refused.detail)
        if self.transport.is_closing():
            return
        self.transport.write(refusal(refused.status, refused.detail))
        # A lingering close: end our side, drop what the client still sends, close a little later.
        # Closing at once with unread input makes the kernel reset the connection, and the client
        # may lose the answer before reading it.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

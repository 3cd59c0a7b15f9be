"""One bounded HTTP POST to a checked target.

The connection goes to `Target.address` (the address that passed the SSRF check) while Host, TLS SNI and
certificate verification use the URL's host name. A watchdog shuts the socket at the total timeout, so a
receiver that dribbles headers or body cannot hold the worker longer; at most `max_body` bytes of the
answer are read. Redirects are not followed (they could lead to an unchecked address).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from fieldpipe.retry import retry_after_seconds
from fieldpipe.webhooks.targets import Target

READ_CHUNK = 16 * 1024
EXCERPT_BYTES = 512


@dataclass(frozen=True)
class HttpResult:
    status_code: int | None          # None when no HTTP answer arrived
    error: str | None                # connection failure or timeout
    duration_ms: int
    body_excerpt: str
    retry_after: float | None        # seconds from a Retry-After header (seconds or an HTTP date)


class _Watchdog:
    """Shuts the connection's socket once `seconds` have passed; `expired` tells the caller why reads failed."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float):
        self.expired = False
        self._conn = conn
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.expired = True
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float, max_body: int) -> HttpResult:
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(target, timeout)
    started = time.monotonic()
    status, error, retry_after, excerpt = None, None, None, b""
    watchdog = _Watchdog(conn, timeout)
    try:
        with watchdog:
            conn.request("POST", target.path, body=body, headers=headers)
            answer = conn.getresponse()
            status, retry_after = answer.status, retry_after_seconds(answer.getheader("Retry-After"))
            received = 0
            while received < max_body:
                chunk = answer.read1(min(READ_CHUNK, max_body - received))
                if not chunk:
                    break
                if len(excerpt) < EXCERPT_BYTES:
                    excerpt += chunk[:EXCERPT_BYTES - len(excerpt)]
                received += len(chunk)
    except (OSError, http.client.HTTPException) as err:
        if watchdog.expired:
            # A status line that arrived still counts: the receiver took the event; only its body was cut off.
            error = f"timed out after {timeout:g} s" + (" reading the answer's body" if status else "")
        elif status is None:
            error = f"{type(err).__name__}: {err}"[:500]
    finally:
        conn.close()
    return HttpResult(status_code=status, error=error, duration_ms=int((time.monotonic() - started) * 1000),
                      body_excerpt=excerpt.decode("utf-8", "replace"), retry_after=retry_after)

"""Bounded HTTP POSTs to checked targets, over kept-alive connections.

The connection goes to `Target.address` (the address that passed the SSRF check) while Host, TLS SNI and
certificate verification use the URL's host name. A watchdog shuts the socket at the total timeout, so a
receiver that dribbles headers or body cannot hold the worker longer; at most `max_body` bytes of the
answer are read. Redirects are not followed (they could lead to an unchecked address).

A `Session` keeps each target's connections open between requests (HTTP/1.1 keep-alive; one request per
connection at a time, so as many connections as threads post to a target at once): a new TCP (and TLS)
connection per delivery is what bounded the deliveries' rate. A connection goes back to the session only
when its answer was read whole and the receiver did not ask to close it. A kept connection the receiver
closed meanwhile is noticed before use (it reads as ready) or, closed just as the request went out, the
request is sent once more on a new connection, as HTTP clients do for kept-alive connections.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import select
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


class _Armed:
    """One request's deadline: at `deadline` its connection's socket is shut, unless the request finished."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float):
        self.deadline = deadline
        self.expired = False
        self._conn = conn
        self._done = False
        self._lock = threading.Lock()

    def fire(self) -> None:
        with self._lock:  # a finished request's connection may already carry the next request: leave it
            if self._done:
                return
            self.expired = True
            sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def disarm(self) -> None:
        with self._lock:
            self._done = True

    @property
    def done(self) -> bool:
        return self._done


class _Watchdog:
    """One thread for every request's deadline (a timer thread per request would cost about as much as the
    request itself). Finished requests are dropped when their deadline comes up."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Armed]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, conn: http.client.HTTPConnection, seconds: float) -> _Armed:
        armed = _Armed(conn, time.monotonic() + seconds)
        with self._cond:
            earliest = not self._heap or armed.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (armed.deadline, next(self._order), armed))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-watchdog", daemon=True)
                self._thread.start()
            elif earliest:
                self._cond.notify()
        return armed

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                armed = heapq.heappop(self._heap)[2]
            armed.fire()


_watchdog = _Watchdog()


def _open_socket(address: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout)
    # http.client writes headers and body apart: without this, a kept-alive connection waits out delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = _open_socket(self._address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        raw = _open_socket(self._address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def _connect(target: Target, timeout: float) -> http.client.HTTPConnection:
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    return connection_class(target, timeout)


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection is usable when nothing is waiting on it (a closed one reads as ready)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


def _exchange(conn: http.client.HTTPConnection, target: Target, body: bytes, headers: dict[str, str],
              timeout: float, max_body: int) -> tuple[HttpResult, bool, BaseException | None]:
    """One request on `conn`: (its result, whether the connection may carry another, the error if any)."""
    started = time.monotonic()
    status, error, retry_after, excerpt, failure = None, None, None, b"", None
    armed = _watchdog.arm(conn, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        answer = conn.getresponse()
        status, retry_after = answer.status, retry_after_seconds(answer.getheader("Retry-After"))
        received = 0
        while received < max_body and answer.length != 0:  # length: what is left of a sized body
            chunk = answer.read1(min(READ_CHUNK, max_body - received))
            if not chunk:
                break
            if len(excerpt) < EXCERPT_BYTES:
                excerpt += chunk[:EXCERPT_BYTES - len(excerpt)]
            received += len(chunk)
        # Read whole, the answer frees the connection for the next request (http.client needs it closed).
        whole = answer.length == 0 or answer.isclosed()
        answer.close()
        keep = whole and not answer.will_close
    except (OSError, http.client.HTTPException) as err:
        failure, keep = err, False
        if armed.expired or isinstance(err, TimeoutError):  # the total time, or one wait as long, ran out
            # A status line that arrived still counts: the receiver took the event; only its body was cut off.
            error = f"timed out after {timeout:g} s" + (" reading the answer's body" if status else "")
        elif status is None:
            error = f"{type(err).__name__}: {err}"[:500]
    finally:
        armed.disarm()
    return (HttpResult(status_code=status, error=error, duration_ms=int((time.monotonic() - started) * 1000),
                       body_excerpt=excerpt.decode("utf-8", "replace"), retry_after=retry_after),
            keep and not armed.expired, failure)


# What a kept-alive connection the receiver closed meanwhile gives when the request goes out on it.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class Session:
    """Kept-alive connections per target, shared by the threads that post (each connection serves one request
    at a time). Close it when done."""

    def __init__(self, max_idle: int = 64):
        self.max_idle = max_idle  # per target
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _take(self, key: tuple) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                conn = idle.pop()
                if _still_open(conn):
                    return conn
                conn.close()
        return None

    def _keep(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def post(self, target: Target, body: bytes, headers: dict[str, str], *, timeout: float,
             max_body: int) -> HttpResult:
        key = (target.scheme, target.address, target.port, target.host)
        conn = self._take(key)
        reused = conn is not None
        conn = conn or _connect(target, timeout)
        result, keep, failure = _exchange(conn, target, body, headers, timeout, max_body)
        if reused and result.status_code is None and isinstance(failure, _STALE):
            conn.close()
            conn = _connect(target, timeout)
            result, keep, failure = _exchange(conn, target, body, headers, timeout, max_body)
        if keep:
            self._keep(key, conn)
        else:
            conn.close()
        return result

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float, max_body: int) -> HttpResult:
    """One POST on a connection of its own."""
    with Session() as session:
        return session.post(target, body, headers, timeout=timeout, max_body=max_body)

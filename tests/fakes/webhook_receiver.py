"""A local webhook receiver: threaded, on 127.0.0.1, records every request and answers as it is told.

    with WebhookReceiver() as receiver:          # started on a free port
        receiver.answer(500)                     # or answer(200, delay=2), answer(200, body_bytes=10_000_000)
        receiver.stop(); receiver.start()        # down (connection refused), then back on the same port
        receiver.requests                        # [Received(path, headers, body, received_at, peer)]

Run it by hand for `make up`: `python -m tests.fakes.webhook_receiver --port 8098 [--secret whsec_... | --secret-file F]`
prints each call and whether its signature verifies.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fieldpipe.dev.embedded_db import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    peer: tuple = ()            # the sender's (address, port): one per connection it opened

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass(frozen=True)
class Behaviour:
    status: int = 200
    delay: float = 0.0          # seconds before answering
    body_bytes: int = 0         # size of the answer's body, streamed in chunks
    retry_after: str | None = None


class WebhookReceiver:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hooks", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, status: int = 200, *, delay: float = 0.0, body_bytes: int = 0,
               retry_after: str | None = None) -> None:
        self.behaviour = Behaviour(status, delay, body_bytes, retry_after)

    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, time.time(),
                                                      self.client_address))
                behaviour = receiver.behaviour
                if behaviour.delay and receiver._stopping.wait(behaviour.delay):
                    return
                try:
                    self.send_response(behaviour.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(behaviour.body_bytes))
                    if behaviour.retry_after:
                        self.send_header("Retry-After", behaviour.retry_after)
                    self.end_headers()
                    chunk = b"x" * 65536
                    for offset in range(0, behaviour.body_bytes, len(chunk)):
                        self.wfile.write(chunk[:behaviour.body_bytes - offset])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender stopped reading, as it should with a huge answer

            def log_message(self, *args: object) -> None:
                pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()`."""
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read(path: str | None) -> str | None:
    try:
        return open(path).read().strip() if path else None
    except OSError:
        return None


def main() -> None:
    from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--secret", help="the webhook's signing secret, to check signatures")
    parser.add_argument("--secret-file", help="a file holding the signing secret (read at each call)")
    args = parser.parse_args()
    with WebhookReceiver(args.port) as receiver:
        print(f"listening on {receiver.url()}", flush=True)
        seen = 0
        while True:
            time.sleep(0.5)
            for request in receiver.requests[seen:]:
                secret = args.secret or _read(args.secret_file)
                valid = verify_signature(secret, request.headers.get(SIGNATURE_HEADER), request.body) \
                    if secret else "not checked"
                print(f"{request.path} signature={valid} {request.body.decode()}", flush=True)
            seen = len(receiver.requests)


if __name__ == "__main__":
    main()

"""A local stand-in for Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json).

Threaded, HTTP/1.1 keep-alive, on 127.0.0.1 and a free port. It checks basic auth against a fixed test
account, records every message it accepts (with the time it arrived), answers like Twilio (201 with a
`sid`; errors as {"code", "message", "status"}), and can be told to misbehave:
- `rate`/`burst`: it enforces a token bucket of its own and answers 429 (code 20429) above it, counting
  those in `over_limit`, so a test sees whether our dispatcher ever exceeded the configured rate;
- `fault_ratio`: that fraction of requests answers 429 or 500 at random (without accepting the message);
- `fail_next(status, times, retry_after)`: the next requests answer `status`;
- `hang_next(times)`: the next requests are accepted, then answered after `hang_s` (a read timeout);
- `invalid_numbers` / `unsubscribed_numbers`: 400 with code 21211 / 21610;
- `latency_s`: every answer waits this long, like a real API across the internet; `max_in_flight` is the
  most requests it was answering at once.

Run it by hand (or from a benchmark, in its own process): `python -m tests.fakes.twilio_server --port 8098
--rate 200`; it prints its base URL first, and `GET /_fake/log` returns the messages and counters.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "ACtest00000000000000000000000000"
AUTH_TOKEN = "test-token-not-secret"
FROM_NUMBER = "+15005550006"


class FakeTwilio:
    def __init__(self, *, rate: float | None = None, burst: int = 10, fault_ratio: float = 0.0,
                 latency_s: float = 0.0, hang_s: float = 2.0, seed: int | None = None, port: int = 0):
        self.rate, self.burst, self.fault_ratio, self.latency_s, self.hang_s = rate, burst, fault_ratio, latency_s, hang_s
        self.messages: list[dict] = []
        self.requests = 0
        self.over_limit = 0
        self.faults = 0
        self.in_flight = self.max_in_flight = 0
        self.invalid_numbers: set[str] = set()
        self.unsubscribed_numbers: set[str] = set()
        self._scripted: list[tuple[int, float | None]] = []
        self._hang = 0
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._tokens, self._refilled = float(burst), time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def connection_json(self, **extra) -> str:
        """An Airflow connection (for AIRFLOW_CONN_TWILIO_DEFAULT) pointing at this server."""
        return json.dumps({"conn_type": "http", "host": self.base_url, "login": ACCOUNT_SID,
                           "password": AUTH_TOKEN, "extra": {"from": FROM_NUMBER, **extra}})

    def start(self) -> "FakeTwilio":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self._lock:
            self._scripted.extend([(status, retry_after)] * times)

    def hang_next(self, times: int = 1) -> None:
        with self._lock:
            self._hang += times

    def bodies(self) -> list[str]:
        with self._lock:
            return [m["body"] for m in self.messages]

    def _take_token(self) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _answer(self, form: dict) -> tuple[int, dict, dict, bool]:
        """(status, body, headers, hang) for one request, deciding and recording under the lock."""
        with self._lock:
            self.requests += 1
            if not self._take_token():
                self.over_limit += 1
                return 429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {}, False
            if self._scripted:
                status, retry_after = self._scripted.pop(0)
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return status, {"code": 20429 if status == 429 else 20500, "message": "scripted failure",
                                "status": status}, headers, False
            if self.fault_ratio and self._random.random() < self.fault_ratio:
                self.faults += 1
                status = self._random.choice((429, 500))
                return status, {"code": 20429 if status == 429 else 20500, "message": "injected fault",
                                "status": status}, {}, False
            to, body = form.get("To", [""])[0], form.get("Body", [""])[0]
            if to in self.invalid_numbers:
                return 400, {"code": 21211, "message": f"The 'To' number {to} is not a valid phone number.",
                             "status": 400}, {}, False
            if to in self.unsubscribed_numbers:
                return 400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                             "status": 400}, {}, False
            sid = "SM" + uuid.uuid4().hex
            self.messages.append({"sid": sid, "to": to, "from": form.get("From", [None])[0], "body": body,
                                  "received_at": time.time()})
            hang = self._hang > 0
            self._hang -= 1 if hang else 0
            return 201, {"sid": sid, "to": to, "body": body, "status": "queued"}, {}, hang

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/_fake/log":
                    return self._send(404, {"code": 20404, "message": "not found", "status": 404})
                with fake._lock:
                    self._send(200, {"messages": list(fake.messages), "requests": fake.requests,
                                     "over_limit": fake.over_limit, "faults": fake.faults})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client died mid-request: like Twilio, take nothing from it
                    self.close_connection = True
                    return
                form = parse_qs(raw.decode())
                expected = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
                token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                if self.path != expected:
                    return self._send(404, {"code": 20404, "message": "not found", "status": 404})
                if self.headers.get("Authorization") != f"Basic {token}":
                    return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                status, body, headers, hang = fake._answer(form)
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                with fake._lock:
                    fake.in_flight -= 1
                if hang:
                    time.sleep(fake.hang_s)
                try:
                    self._send(status, body, headers)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8098, help="0 picks a free port")
    parser.add_argument("--rate", type=float, help="enforce this many messages a second (429 above it)")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--fault-ratio", type=float, default=0.0, help="answer this fraction 429 or 500")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    fake = FakeTwilio(rate=args.rate, burst=args.burst, fault_ratio=args.fault_ratio, latency_s=args.latency,
                      port=args.port).start()
    # the first line is what a parent process reads to find the server; GET /_fake/log returns what it saw
    print(f"{fake.base_url} account {ACCOUNT_SID} token {AUTH_TOKEN} from {FROM_NUMBER}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()

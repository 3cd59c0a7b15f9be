"""The local mail server `make up` starts (and the tests use): accepts every message over SMTP on 127.0.0.1
and keeps it as a file, `var/mail/<time>-<n>.eml`, so the operators' notices can be read without a mail
account. `python -m fieldpipe.dev.mail_sink --port 8025 --dir var/mail`.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import signal
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class _KeepAsFiles:
    def __init__(self, directory: Path):
        self.directory = directory
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._numbers):04d}.eml"
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        (self.directory / name).write_bytes(envelope.original_content)
        print(f"mail to {', '.join(envelope.rcpt_tos)}: {message['subject']} ({name})", flush=True)
        return "250 Message accepted for delivery"


class MailSink:
    """with MailSink(directory) as sink: ... sink.port, sink.messages() (parsed, oldest first)."""

    def __init__(self, directory: Path, port: int | None = None):
        from fieldpipe.dev.embedded_db import free_port

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._controller = Controller(_KeepAsFiles(self.directory), hostname="127.0.0.1", port=self.port)

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(self.directory.glob("*.eml"))]

    def __enter__(self) -> "MailSink":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with MailSink(args.dir, args.port) as sink:
        print(f"keeping mail sent to 127.0.0.1:{sink.port} in {sink.directory}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

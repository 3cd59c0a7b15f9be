"""A small keep-alive HTTP/1.1 load generator (asyncio, raw sockets) so the client costs little CPU
on a 2-core machine that it shares with the server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


async def _client(host: str, port: int, make_request: Callable[[], tuple[str, bytes]], extra_headers: bytes,
                  deadline: float, result: LoadResult, max_requests: int | None, content_type: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline and (max_requests is None or result.requests < max_requests):
            path, body = make_request()
            head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n").encode()
            started = time.perf_counter()
            writer.write(head + extra_headers + b"\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.requests += 1
    finally:
        writer.close()


def run_load(host: str, port: int, make_request: Callable[[], tuple[str, bytes]] | None, *, clients: int,
             seconds: float, headers: dict[str, str], max_requests: int | None = None,
             content_type: str = "application/json",
             own: list[tuple[dict[str, str], Callable[[], tuple[str, bytes]]]] | None = None) -> LoadResult:
    """`clients` keep-alive connections sending as fast as answered. Each sends `headers` and requests from
    `make_request`, or with `own`, client i adds own[i]'s headers and makes its requests with own[i]'s maker
    (a student with their own token and path, say)."""
    def encoded(extra: dict[str, str]) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in {**headers, **extra}.items()).encode()

    plan = own or [({}, make_request)] * clients
    result = LoadResult()

    async def main() -> None:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(_client(host, port, maker, encoded(extra), deadline, result, max_requests,
                                       content_type) for extra, maker in plan[:clients]))
        result.seconds = time.monotonic() - started

    asyncio.run(main())
    return result

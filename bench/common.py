"""What the benchmarks share: a throwaway, durable PostgreSQL with the schema, and an org with an admin key."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fieldpipe.db import connect, migrate
from fieldpipe.dev.embedded_db import EmbeddedPostgres, free_port


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh PostgreSQL cluster (fsync on, as in production) with the migrated app database."""
    data_dir = Path(tempfile.mkdtemp(prefix="fieldpipe-bench-"))
    server = EmbeddedPostgres(data_dir, free_port()).start()
    try:
        url = server.ensure_database("fieldpipe")
        migrate(url)
        yield url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def admin_key(url: str, org: str = "bench") -> str:
    from fieldpipe.orgs import create_key

    with connect(url) as conn:
        key = create_key(conn, org, "admin", create_org=True)
        conn.commit()
    return key


def figure(value: float, unit: str, baseline: float, target: str, higher_is_better: bool = True, **extra) -> dict:
    ratio = (value / baseline if higher_is_better else baseline / value) if value and baseline else None
    return {"value": round(value, 3), "unit": unit, "baseline": round(baseline, 3),
            "ratio": round(ratio, 2) if ratio else None, "target": target, **extra}

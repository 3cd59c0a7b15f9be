"""Settings, read from the environment once per call so tests and processes can override them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Runtime data (embedded database, Airflow home, local SMS and exports); never committed."""
    return Path(os.environ.get("FIELDPIPE_VAR_DIR", REPO_ROOT / "var")).resolve()


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    max_body_bytes: int
    embedded_pg_port: int
    production: bool
    bucket: str

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            max_body_bytes=int(os.environ.get("FIELDPIPE_MAX_BODY_BYTES", 5 * 1024 * 1024)),
            embedded_pg_port=int(os.environ.get("FIELDPIPE_PG_PORT", 54329)),
            production=os.environ.get("FIELDPIPE_ENV", "development") == "production",
            bucket=os.environ.get("FIELDPIPE_BUCKET", "fieldpipe"),
        )

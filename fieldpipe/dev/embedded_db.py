"""An embedded PostgreSQL server for machines without one: `make up` and the test suite.

It uses the binaries of the `pgserver` wheel (real PostgreSQL 16), or the system's `pg_ctl`
when the wheel is missing, listens on 127.0.0.1 only, and keeps its data under a directory
we choose (`var/postgres` for `make up`, a temporary directory for tests).
PostgreSQL refuses to run as root, so as root the server runs as an unprivileged system user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

SYSTEM_USER = "fieldpipe-pg"


def _bin_dir() -> Path:
    """The pgserver wheel's bin/ (found without importing it: its import has side effects), else the system's."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    pg_ctl = shutil.which("pg_ctl")
    if not pg_ctl:
        raise RuntimeError("no PostgreSQL found: install the pgserver wheel or set DATABASE_URL")
    return Path(pg_ctl).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> dict:
    """subprocess arguments that drop root, creating the system user on first use."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
    return {"user": SYSTEM_USER}


def _make_reachable(path: Path) -> None:
    """The unprivileged server user must traverse every parent and read the binaries."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        parent.chmod(mode | 0o055)
    for root, dirs, files in os.walk(_bin_dir().parent):
        for name in dirs + files:
            p = Path(root, name)
            p.chmod(p.stat().st_mode | 0o055)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    fast_unsafe: bool = False  # fsync off: for throwaway test clusters only

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg(self, tool: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(_bin_dir() / tool), *args], check=True, capture_output=True, text=True, **_run_as(), **kwargs
        )

    def start(self) -> "EmbeddedPostgres":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _run_as()
            _make_reachable(self.data_dir)
            shutil.chown(self.data_dir, SYSTEM_USER, SYSTEM_USER)
        self.data_dir.chmod(0o700)  # PostgreSQL refuses a data directory others can read
        if not (self.data_dir / "PG_VERSION").exists():
            self._pg("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                     "--encoding=UTF8", "--locale=C.UTF-8")
        if self.is_running():
            return self
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200"
        if self.fast_unsafe:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.data_dir / "server.log"
        result = subprocess.run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, **_run_as(),
        )
        if result.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else result.stderr
            raise RuntimeError(f"embedded PostgreSQL did not start on port {self.port}:\n{tail}")
        self.wait_ready()
        return self

    def is_running(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded PostgreSQL on port {self.port} is not accepting connections")
            time.sleep(0.2)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run([str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                           capture_output=True, **_run_as())

    def ensure_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

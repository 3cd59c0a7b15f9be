"""Real Airflow for benchmarks and end-to-end tests: api-server, scheduler and dag-processor (and, with the
CeleryExecutor, the embedded Redis and two Celery workers) against given databases, on free ports, plus
moto for object storage; DAG runs driven and read through the REST API.

`make up` runs the same components through `fieldpipe.dev.devserver`; this is the unattended variant:
every DAG starts paused and `run_once` unpauses one, times the run that takes its work, and pauses it again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from fieldpipe.config import REPO_ROOT
from fieldpipe.dev import airflow_runtime
from fieldpipe.dev.embedded_db import free_port

BIN = Path(sys.executable).parent
RUN_TIMEOUT_S = 1800


class AirflowStack:
    """Airflow's components as processes with their logs in `home`/logs-stack; a context manager."""

    def __init__(self, app_url: str, metadata_url: str, home: Path, dag_ids: list[str], executor: str = "local",
                 extra_env: dict[str, str] | None = None):
        self.port, moto_port = free_port(), free_port()
        env = airflow_runtime.airflow_env(app_url, metadata_url, home)
        # Forced, not defaulted: the calling process may hold another database's connection (a test session).
        env.update(airflow_runtime.local_connections(app_url))
        env["AIRFLOW_CONN_AWS_DEFAULT"] = airflow_runtime.local_aws_connection(f"http://127.0.0.1:{moto_port}")
        env.update(airflow_runtime.local_secrets(home))
        env.update({
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # the defaults, stated: every DAG starts paused and is unpaused when measured
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "FIELDPIPE_VAR_DIR": str(home.parent / "var"),  # local SMS and xlsx exports
            "DATABASE_URL": app_url,
            **(extra_env or {}),
        })
        if executor == "celery":
            redis_port = free_port()
            env.update(airflow_runtime.celery_env(f"redis://127.0.0.1:{redis_port}/0"))
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.home = home
        airflow_runtime.admin_password(home)
        self.dag_ids = dag_ids
        self.log_dir = home / "logs-stack"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []
        self.commands = {
            "moto": [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            "api-server": [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": [str(BIN / "airflow"), "scheduler"],
            "dag-processor": [str(BIN / "airflow"), "dag-processor"],
        }
        if executor == "celery":
            self.commands["redis"] = airflow_runtime.redis_command(redis_port, home / "redis")
            for number in range(1, airflow_runtime.CELERY_WORKERS + 1):
                self.commands[f"worker-{number}"] = airflow_runtime.celery_worker_command(str(BIN / "airflow"), number)
        self.session = requests.Session()

    def start(self) -> None:
        subprocess.run([sys.executable, "-m", "fieldpipe.cli", "airflow", "init"], check=True, cwd=REPO_ROOT,
                       env=self.env, stdout=subprocess.DEVNULL)
        for name, command in self.commands.items():
            with open(self.log_dir / f"{name}.log", "ab") as log:
                self.processes.append(subprocess.Popen(command, env=self.env, cwd=REPO_ROOT, stdout=log,
                                                       stderr=subprocess.STDOUT, start_new_session=True))
        self._wait(lambda: self._get_ok(f"http://127.0.0.1:{self.port}/api/v2/version"), 240, "the api-server")
        password = json.loads(airflow_runtime.passwords_file(self.home).read_text())[airflow_runtime.ADMIN_USER]
        token = requests.post(f"http://127.0.0.1:{self.port}/auth/token", timeout=30,
                              json={"username": airflow_runtime.ADMIN_USER, "password": password})
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        self._wait(lambda: set(self.dag_ids) <= {d["dag_id"] for d in self.api("GET", "dags?limit=100")["dags"]}, 300,
                   "the DAGs to be parsed")

    def __enter__(self) -> "AirflowStack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    @staticmethod
    def _get_ok(url: str) -> bool:
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _wait(self, ready, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; logs in {self.log_dir}")
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"an Airflow process exited while waiting for {what}; logs in {self.log_dir}")
            time.sleep(2)

    def api(self, method: str, path: str, **kwargs) -> dict:
        answer = self.session.request(method, f"http://127.0.0.1:{self.port}/api/v2/{path}", timeout=60, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run, mapped ones each on their own."""
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]

    def run_once(self, dag_id: str) -> dict:
        """Unpause the DAG, time the run that takes its work (the first created from now on, or a triggered
        one when its schedule has nothing due), pause it again.

        Returns {"run_id", "seconds" (start to end), "task_instances", "state", "failed_tasks"}."""
        since = dt.datetime.now(dt.timezone.utc)
        known = {r["dag_run_id"] for r in self.api("GET", f"dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]}
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        deadline = time.monotonic() + 20
        new = []
        while not new and time.monotonic() < deadline:
            time.sleep(2)
            new = [r for r in self.api("GET", f"dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]
                   if r["dag_run_id"] not in known]
        if not new:
            self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": since.isoformat()})
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            runs = sorted((r for r in self.api("GET", f"dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]
                           if r["dag_run_id"] not in known), key=lambda r: r["queued_at"] or "")
            if runs and runs[0]["state"] in ("success", "failed") and runs[0]["end_date"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} did not finish within {RUN_TIMEOUT_S} s")
            time.sleep(2)
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": True})
        run = runs[0]
        # A schedule tick during the run queued another: fail it, or it would run later, on other data.
        for other in self.api("GET", f"dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]:
            if other["dag_run_id"] != run["dag_run_id"] and other["state"] not in ("success", "failed"):
                self.api("PATCH", f"dags/{dag_id}/dagRuns/{other['dag_run_id']}", json={"state": "failed"})
        instances = self.task_instances(dag_id, run["dag_run_id"])
        seconds = (dt.datetime.fromisoformat(run["end_date"]) - dt.datetime.fromisoformat(run["start_date"])).total_seconds()
        failed = [f"{ti['task_id']}[{ti['map_index']}]" for ti in instances if ti["state"] == "failed"]
        result = {"run_id": run["dag_run_id"], "seconds": round(seconds, 1), "task_instances": len(instances),
                  "state": run["state"], "failed_tasks": failed}
        print(f"   {dag_id}: {result}", flush=True)
        return result

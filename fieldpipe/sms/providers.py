"""Where SMS go: one interface, three real implementations, and one classification of errors.

Every send ends in a `SendResult` whose `outcome` is
- `sent`: the provider accepted it (with its message id);
- `retry`: throttled (429), a server error (5xx), or the connection failed before the request went out;
- `failed`: the provider refused this message for good (invalid or unsubscribed number, bad request);
- `unknown`: the request went out but no answer came back (read timeout, dropped connection). Twilio and
  SNS have no idempotency key, so sending again could deliver twice: an operator decides (docs/sms.md).

Secrets come from Airflow connections (`aws_default`, `twilio_default`) and are never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

from fieldpipe.config import var_dir
from fieldpipe.pipelines.names import AWS_CONN, TWILIO_CONN
from fieldpipe.retry import retry_after_seconds

SNS_RETRYABLE_CODES = {"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
                       "InternalError", "InternalFailure", "ServiceUnavailable", "KMSThrottling",
                       # credentials or permissions are the deployment's problem, not this message's
                       "AuthorizationError", "InvalidClientTokenId", "UnrecognizedClientException",
                       "ExpiredToken", "SignatureDoesNotMatch"}


@dataclass(frozen=True)
class SendResult:
    outcome: str  # sent | retry | failed | unknown
    provider_message_id: str | None = None
    error: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait (Retry-After)


class Provider(Protocol):
    name: str

    def send(self, message: dict) -> SendResult:
        """Send one claimed outbox row (id, kind, recipient, body); never raises for a delivery error."""

    def confirm(self, message_ids: Iterable[int]) -> set[int] | None:
        """The ids among `message_ids` the provider has, or None when it cannot tell."""


class FileProvider:
    """The local default: one JSON line per sent message in var/sms/sent.jsonl.

    Each line is written with one O_APPEND write, so a killed dispatcher leaves whole lines only, and the
    file is the provider's own record: `confirm` reads it to settle claims a killed dispatcher abandoned.
    """

    name = "file"

    def __init__(self, path: Path | None = None):
        self.path = path or var_dir() / "sms" / "sent.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, message: dict) -> SendResult:
        record = {"message_id": message["id"], "to": message["recipient"], "body": message["body"],
                  "kind": message["kind"], "sent_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        record.update({k: message[k] for k in ("sender_id", "dlt_template_id") if message.get(k)})
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
        except OSError as err:  # the disk, not the message: try again later
            return SendResult("retry", error=f"cannot append to {self.path}: {err}")
        return SendResult("sent", provider_message_id=f"file:{message['id']}")

    def confirm(self, message_ids: Iterable[int]) -> set[int] | None:
        wanted = set(message_ids)
        if not self.path.exists():
            return set()
        found = set()
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    message_id = json.loads(line)["message_id"]
                except (ValueError, KeyError, TypeError):
                    continue
                if message_id in wanted:
                    found.add(message_id)
        return found


class TwilioProvider:
    """Twilio's Messages API with `requests`; `base_url` is the connection's host, so a local stand-in works."""

    name = "twilio"

    def __init__(self, base_url: str, account_sid: str, auth_token: str, *, from_number: str | None = None,
                 messaging_service_sid: str | None = None, connect_timeout: float = 5.0, read_timeout: float = 15.0):
        if not (from_number or messaging_service_sid):
            raise ValueError("twilio_default needs extra 'from' (a number) or 'messaging_service_sid'")
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth = (account_sid, auth_token)
        self._sender = {"MessagingServiceSid": messaging_service_sid} if messaging_service_sid else {"From": from_number}
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()  # requests.Session is not thread-safe: one per sender thread

    @classmethod
    def from_connection(cls, conn_id: str = TWILIO_CONN) -> "TwilioProvider":
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson
        host = conn.host or "https://api.twilio.com"
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        return cls(host, conn.login, conn.password, from_number=extra.get("from"),
                   messaging_service_sid=extra.get("messaging_service_sid"),
                   read_timeout=float(extra.get("read_timeout", 15.0)))

    def _session(self):
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def send(self, message: dict) -> SendResult:
        import requests

        try:
            resp = self._session().post(self.url, data={"To": message["recipient"], "Body": message["body"],
                                                        **self._sender},
                                        auth=self._auth, timeout=self._timeout)
        except requests.exceptions.ConnectTimeout as err:
            return SendResult("retry", error=f"connect timeout: {type(err).__name__}")
        except requests.exceptions.ReadTimeout:
            return SendResult("unknown", error="no answer within the read timeout after the request was sent")
        except requests.exceptions.ConnectionError as err:
            if _failed_before_sending(err):
                return SendResult("retry", error=f"cannot connect: {_reason(err)}")
            return SendResult("unknown", error=f"connection dropped after the request was sent: {_reason(err)}")
        return self._classify(resp)

    @staticmethod
    def _classify(resp) -> SendResult:
        try:
            body = resp.json()
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        detail = (body.get("message") if isinstance(body, dict) else None) or resp.reason
        error = f"HTTP {resp.status_code}" + (f" code {code}" if code else "") + f": {detail}"
        if resp.status_code in (200, 201):
            return SendResult("sent", provider_message_id=body.get("sid"), http_status=resp.status_code)
        common = {"error": error, "http_status": resp.status_code, "error_code": str(code) if code else None}
        if resp.status_code == 429 or resp.status_code >= 500:
            return SendResult("retry", retry_after=retry_after_seconds(resp.headers.get("Retry-After")), **common)
        if resp.status_code in (401, 403, 404):  # wrong credentials or account: the deployment's fault
            return SendResult("retry", **common)
        # Any other 4xx is about this message: 400 with 21211 (invalid number), 21610 (unsubscribed by STOP),
        # 21614 (not a mobile number), 21408 (region not enabled), 21617 (body too long), ...
        return SendResult("failed", **common)

    def confirm(self, message_ids: Iterable[int]) -> set[int] | None:
        return None  # Twilio cannot be asked by our id


def _reason(err: Exception) -> str:
    inner = err.args[0] if err.args else err
    return str(getattr(inner, "reason", inner))


def _failed_before_sending(err: Exception) -> bool:
    """True when the TCP connection was never established, so the provider cannot have the request."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    inner = err.args[0] if err.args else None
    reason = getattr(inner, "reason", inner)
    return isinstance(reason, (NewConnectionError, NameResolutionError, ConnectionRefusedError))


class SnsProvider:
    """AWS SNS `Publish` to a phone number, through the amazon provider's connection (`aws_default`).

    botocore's own retries are off: a retried read timeout would publish twice. Ours classify instead.
    """

    name = "sns"

    def __init__(self, conn_id: str = AWS_CONN, *, sender_id: str | None = None,
                 connect_timeout: float = 5.0, read_timeout: float = 15.0):
        from airflow.providers.amazon.aws.hooks.sns import SnsHook
        from botocore.config import Config

        config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                        connect_timeout=connect_timeout, read_timeout=read_timeout, max_pool_connections=64)
        self._client = SnsHook(aws_conn_id=conn_id, config=config).get_conn()
        self._attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
        if sender_id:
            self._attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender_id}

    def send(self, message: dict) -> SendResult:
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

        try:
            answer = self._client.publish(PhoneNumber=message["recipient"], Message=message["body"],
                                          MessageAttributes=self._message_attributes(message))
        except BotoConnectionError as err:  # endpoint unreachable, connect timeout: nothing was sent
            return SendResult("retry", error=f"cannot connect: {type(err).__name__}")
        except HTTPClientError as err:  # read timeout, connection closed mid-answer: it may have been taken
            return SendResult("unknown", error=f"{type(err).__name__} after the request was sent")
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            error = f"{code}: {err.response.get('Error', {}).get('Message', '')}"
            retryable = code in SNS_RETRYABLE_CODES or (status or 0) >= 500 or status == 429
            return SendResult("retry" if retryable else "failed", error=error, http_status=status, error_code=code)
        return SendResult("sent", provider_message_id=answer["MessageId"], http_status=200)

    def _message_attributes(self, message: dict) -> dict:
        """The account's attributes, with the message's own sender id and India DLT template id when it has them."""
        attributes = dict(self._attributes)
        for key, name in (("sender_id", "AWS.SNS.SMS.SenderID"), ("dlt_template_id", "AWS.MM.SMS.TemplateId")):
            if message.get(key):
                attributes[name] = {"DataType": "String", "StringValue": message[key]}
        return attributes

    def confirm(self, message_ids: Iterable[int]) -> set[int] | None:
        return None  # SNS cannot be asked by our id


def make_provider(name: str) -> Provider:
    """The configured provider, built from its Airflow connection (env `AIRFLOW_CONN_*` works outside Airflow)."""
    if name == "file":
        return FileProvider()
    if name == "twilio":
        return TwilioProvider.from_connection()
    if name == "sns":
        from airflow.sdk import BaseHook

        return SnsProvider(sender_id=BaseHook.get_connection("aws_default").extra_dejson.get("sms_sender_id"))
    raise ValueError(f"unknown SMS provider {name!r}")

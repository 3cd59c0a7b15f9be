"""Per-request plumbing: the caller's API key, one pooled connection (one transaction) and the JSON body.

A transaction that loses a deadlock or a serialization conflict is run again (the body is cached for it),
so a client sees such a race at most as a short delay; a database that cannot be reached is 503.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, suppress
from functools import wraps
from typing import Any, Callable, Iterator

import psycopg
from flask import current_app, request
from psycopg_pool import ConnectionPool

from api.spec import check_query
from fieldpipe.domains import BodyProblem, body_problems, parse_json
from fieldpipe.assessments import signin
from fieldpipe.orgs import KEY_CACHE_SECONDS, KEY_PREFIX, Caller, authenticate, hash_key
from fieldpipe.problems import FieldError, Problem, invalid

log = logging.getLogger("fieldpipe.api")

# Lost races a transaction may simply run again; a request gives up after this many attempts.
RETRIED_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
TRANSACTION_ATTEMPTS = 4

# Field apps send the same key with every post; remembering a key for a short while saves a database
# round trip per request. Keys are never deleted, only revoked, so a revocation takes effect within the TTL
# (at once in the process that revoked it: `forget_key`).
KEY_CACHE_MAX = 10_000
_key_cache: dict[str, tuple[float, Caller]] = {}
_key_cache_lock = threading.Lock()


def _cached_caller(conn, key: str) -> Caller | None:
    digest = hash_key(key)
    now = time.monotonic()
    hit = _key_cache.get(digest)
    if hit and hit[0] > now:
        return hit[1]
    caller = authenticate(conn, key)
    if caller is not None:
        with _key_cache_lock:
            if len(_key_cache) >= KEY_CACHE_MAX:
                _key_cache.clear()
            _key_cache[digest] = (now + KEY_CACHE_SECONDS, caller)
    return caller


def forget_key(key_id: int) -> None:
    """Drop a revoked key from this process's cache; other processes drop it within KEY_CACHE_SECONDS."""
    with _key_cache_lock:
        for digest in [d for d, (_, caller) in _key_cache.items() if caller.key_id == key_id]:
            del _key_cache[digest]


def _api_key() -> str | None:
    credential = bearer_credential(request.headers.get("Authorization", ""))
    if credential is not None:
        return credential or None
    return request.headers.get("X-API-Key") or None


def bearer_credential(authorization: str) -> str | None:
    """What an `Authorization: Bearer <credential>` header carries ("" when nothing); None for another header."""
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else None


def endpoint(admin: bool = False) -> Callable:
    """Authenticate, reject undeclared query parameters, then run the view in one transaction: committed on
    success, rolled back on any error."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            key = _api_key()
            if key is None:
                raise Problem("unauthenticated", "send the API key as 'Authorization: Bearer <key>'")
            if signin.looks_like_token(key):
                if signin.verify_token(key) is None:
                    raise Problem("unauthenticated", "the token is not valid or has expired")
                raise Problem("forbidden", "a student token reaches only the student's own exams "
                                           "(/api/v1/students/<id>/exams); this route needs an API key")

            def run(conn):
                caller = _cached_caller(conn, key)
                if caller is None:
                    raise Problem("unauthenticated", "the API key is not valid")
                if admin and not caller.is_admin:
                    raise Problem("forbidden", "this route needs an admin key")
                check_query()
                return view(conn, caller, *args, **kwargs)

            return _in_transaction(run)

        wrapper.fieldpipe_auth = "admin" if admin else "key"
        return wrapper

    return decorate


def student_endpoint(autocommit: bool = False) -> Callable:
    """A route for a signed-in student: the student token is checked without the database (signature and
    expiry), then the view runs in one transaction with the token's `Student`. API keys are refused.
    `autocommit`: for a view whose only write is a single statement, each statement commits on its own,
    which saves the round trips of BEGIN and COMMIT."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            token = _api_key()
            if token is None:
                raise Problem("unauthenticated", "send the student token as 'Authorization: Bearer <token>' "
                                                 "(POST /api/v1/auth/student)")
            student = signin.verify_token(token) if signin.looks_like_token(token) else None
            if student is None:
                if token.startswith(KEY_PREFIX):
                    raise Problem("forbidden", "this route is for a signed-in student's token, not an API key")
                raise Problem("unauthenticated", "the student token is not valid or has expired; sign in again")
            check_query()
            return _in_transaction(lambda conn: view(conn, student, *args, **kwargs), autocommit=autocommit)

        wrapper.fieldpipe_auth = "student"
        return wrapper

    return decorate


def _in_transaction(work: Callable, autocommit: bool = False) -> Any:
    """Run `work(conn)` in one transaction of a pooled connection (or with each statement committed on its
    own), again after a lost race."""
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            with borrowed_connection(current_app.extensions["fieldpipe_pool"], autocommit) as conn:
                return work(conn)
        except RETRIED_ERRORS as err:
            log.warning("%s on %s %s (attempt %d of %d)", type(err).__name__, request.method,
                        request.url_rule, attempt, TRANSACTION_ATTEMPTS)
            if attempt == TRANSACTION_ATTEMPTS:
                raise Problem("unavailable", "the database is busy; retry shortly") from None
            time.sleep(0.02 * attempt)


@contextmanager
def borrowed_connection(pool: ConnectionPool, autocommit: bool = False,
                        timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection for one transaction, or with each statement committed on its own (`autocommit`);
    PoolTimeout when none is free within `timeout` seconds (the pool's own when None)."""
    with pool.connection(timeout) as conn:
        if not autocommit:
            yield conn
            return
        conn.autocommit = True
        try:
            yield conn
        finally:
            with suppress(psycopg.Error):  # a broken connection is discarded by the pool anyway
                conn.autocommit = False


def json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem("unsupported-media-type", f"send application/json, not {mimetype}")
    raw = request.get_data(cache=True)  # cached: a retried transaction reads it again
    try:
        body = parse_json(raw)
    except BodyProblem as problem:
        raise invalid([FieldError(problem.field, problem.code, str(problem))]) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise Problem("malformed-json", f"the body is not valid JSON: {err}") from None
    problems = [FieldError(p.field, p.code, str(p)) for p in body_problems(body)][:50]
    if problems:
        raise invalid(problems)
    return body


"""Per-request plumbing: the caller's API key, one pooled connection (one transaction) and the JSON body."""

from __future__ import annotations

import json
from functools import wraps
from typing import Any, Callable

from flask import current_app, request

from fieldpipe.orgs import authenticate
from fieldpipe.problems import Problem


def _api_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def endpoint(admin: bool = False) -> Callable:
    """Authenticate, then run the view in one transaction: committed on success, rolled back on any error."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            key = _api_key()
            if key is None:
                raise Problem("unauthenticated", "send the API key as 'Authorization: Bearer <key>'")
            with current_app.extensions["fieldpipe_pool"].connection() as conn:
                caller = authenticate(conn, key)
                if caller is None:
                    raise Problem("unauthenticated", "the API key is not valid")
                if admin and not caller.is_admin:
                    raise Problem("forbidden", "this route needs an admin key")
                return view(conn, caller, *args, **kwargs)

        wrapper.fieldpipe_admin = admin
        return wrapper

    return decorate


def json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem("unsupported-media-type", f"send application/json, not {mimetype}")
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise Problem("malformed-json", f"the body is not valid JSON: {err}") from None

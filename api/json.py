"""JSON that keeps local-language text as is and writes timestamps as ISO 8601."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

from flask.json.provider import DefaultJSONProvider


class FieldpipeJSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    @staticmethod
    def default(value):
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, decimal.Decimal):
            return float(value)
        return DefaultJSONProvider.default(value)

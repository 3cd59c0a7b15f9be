"""JSON that keeps local-language text as is and writes timestamps as ISO 8601."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

from flask.json.provider import DefaultJSONProvider

from fieldpipe.domains import json_value


class FieldpipeJSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    @staticmethod
    def default(value):
        if isinstance(value, (dt.datetime, dt.date, uuid.UUID, decimal.Decimal)):
            return json_value(value)
        return DefaultJSONProvider.default(value)

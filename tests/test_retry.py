"""The one retry schedule (fieldpipe/retry.py): backoff with jitter, Retry-After as seconds or an HTTP date."""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timezone

from fieldpipe.retry import Backoff, retry_after_seconds

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds("-5") == 0.0
    later = format_datetime(datetime(2026, 11, 29, 12, 1, 30, tzinfo=timezone.utc), usegmt=True)
    assert later == "Sun, 29 Nov 2026 12:01:30 GMT"
    assert retry_after_seconds(later, now=lambda: NOW) == 90.0
    assert retry_after_seconds("Sun, 29 Nov 2026 11:00:00 GMT", now=lambda: NOW) == 0.0  # already past
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None


def test_backoff_doubles_with_jitter_up_to_the_cap():
    backoff = Backoff(base=30, cap=3600)
    for retry, full in ((1, 30), (2, 60), (3, 120), (8, 3600), (40, 3600)):
        delays = [backoff.delay(retry) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 10  # jittered, not one fixed value


def test_retry_after_is_a_floor_capped_only_when_the_caller_says_so():
    capped = Backoff(base=1, cap=600, retry_after_cap=600)
    assert capped.delay(1, retry_after=120) == 120
    assert 0.5 <= capped.delay(1, retry_after=0) <= 1
    assert capped.delay(1, retry_after=86_400) == 600
    assert Backoff(base=0.01, cap=0.05).delay(3, retry_after=86_400) == 86_400

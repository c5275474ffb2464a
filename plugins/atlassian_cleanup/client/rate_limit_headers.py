"""What Atlassian's response headers say about its rate limits: when to come back, how much is left.

Jira sends ``Retry-After`` (seconds, or an HTTP date), the Admin API ``X-RateLimit-Reset`` (an
ISO-8601 instant such as ``2023-10-11T10:15Z``); both report the budget left in
``X-RateLimit-Remaining`` / ``X-RateLimit-Limit``. The retry policy and the pacer act on them
(:mod:`~atlassian_cleanup.client.retry`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """
    Seconds to wait according to a ``Retry-After`` header (delta-seconds or an HTTP date).

    :param value: the header value.
    :param now: the current time (timezone aware).
    :return: seconds (never negative), or ``None`` when absent or unparseable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_rate_limit_reset(value: str | None, now: datetime) -> float | None:
    """
    Seconds until an ``X-RateLimit-Reset`` instant.

    The Admin API sends ISO-8601 without seconds (``2023-10-11T10:15Z``); seconds, fractions and
    offsets are accepted too, as is an epoch-seconds number.

    :param value: the header value.
    :param now: the current time (timezone aware).
    :return: seconds until the reset (may be ``<= 0`` if the instant is past), ``None`` if unparseable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        # Some gateways send epoch seconds; small numbers can only be a delta.
        return number - now.timestamp() if number > 1e9 else number
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


@dataclass
class RateLimitTracker:
    """
    The latest rate-limit headers seen on a credential, for pacing and for the task log.

    ``X-RateLimit-NearLimit: true`` means less than 20 % of the budget is left; it is logged once
    each time the client enters that state, not on every response.
    """

    remaining: int | None = None
    limit: int | None = None
    near_limit: bool = False
    reason: str | None = None

    def observe(self, response: requests.Response) -> None:
        """
        Record the rate-limit headers of a response.

        :param response: any response from Atlassian.
        """
        headers = response.headers
        remaining = _int_header(headers.get("X-RateLimit-Remaining"))
        if remaining is not None:
            self.remaining = remaining
        limit = _int_header(headers.get("X-RateLimit-Limit"))
        if limit is not None:
            self.limit = limit
        if headers.get("RateLimit-Reason"):
            self.reason = headers.get("RateLimit-Reason")
        near = headers.get("X-RateLimit-NearLimit")
        if near is None:
            return
        is_near = near.strip().lower() == "true"
        if is_near and not self.near_limit:
            log.warning(
                "Atlassian reports the rate limit is nearly used up (X-RateLimit-Remaining=%s); "
                "requests will slow down if it runs out.",
                self.remaining if self.remaining is not None else "unknown",
            )
        self.near_limit = is_near


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None

"""Day arithmetic: the one definition of "N days ago" used by every decision and every sentence.

A day count is the number of **calendar days between two UTC dates**: from the UTC date of the
earlier moment (a last activity, a join, a warning, an action) to the UTC date of the run (its
logical date, ``as_of``). A run dated 2026-11-27 therefore says a user last active on 2026-08-29
(at any time of that day) has been inactive for 90 days, which is what anyone counting the dates
in the audit row or the e-mail gets. The time of day never matters: 00:00 and 23:59 on the same
date count the same.

The functions take epoch seconds (floats, NaN for "unknown") and work element-wise on numpy
arrays as well as on single numbers, so the column-wise planner and any one-row caller share the
same arithmetic; :func:`calendar_days` is the same for two datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

#: Seconds in a UTC day (UTC has no daylight saving; leap seconds do not exist in epoch time).
SECONDS_PER_DAY = 86_400.0


def utc_day(seconds: Any) -> Any:
    """The day number (days since 1970-01-01) of the UTC date of ``seconds``; NaN stays NaN."""
    return np.floor(np.asarray(seconds, dtype=float) / SECONDS_PER_DAY)


def days_between(earlier: Any, as_of: Any) -> Any:
    """Calendar days from the UTC date of ``earlier`` to the UTC date of ``as_of`` (epoch seconds).

    Negative when ``earlier`` is on a later date; NaN where either is NaN.
    """
    return utc_day(as_of) - utc_day(earlier)


def calendar_days(earlier: datetime, as_of: datetime) -> int:
    """:func:`days_between` for two timezone-aware datetimes."""
    if earlier.tzinfo is None or as_of.tzinfo is None:
        raise ValueError("calendar_days needs timezone-aware datetimes")
    return int(days_between(earlier.timestamp(), as_of.timestamp()))

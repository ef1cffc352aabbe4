"""The `lastPollTime` of a test run: an RFC 3339 date-time (OpenAPI's `date-time`), or the same
without an offset, which is taken as UTC. It reaches the code as an ISO-8601 UTC string.

Every such string is accepted, including a leap second (`23:59:60`, read as the last instant of
second 59), lowercase `t` and `z`, and any number of fractional digits (microseconds are kept).
A moment before 0001-01-01T00:00:00Z or after 9999-12-31T23:59:59.999999Z once converted to UTC
(such as `0001-01-01T00:00:00+01:00`) is given to the code as that bound: Python's datetime, and
a four-digit year, cannot go further.
"""

import re
from datetime import UTC, date, datetime, timedelta

from ..timestamps import iso_z

_DIGIT = "[0-9]"
_LEAP_YEAR = f"(?:{_DIGIT}{{2}}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_DATE = (
    f"(?:{_DIGIT}{{4}}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
    f"|{_LEAP_YEAR}-02-29)"
)
_TIME = f"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.{_DIGIT}+)?"
# The date-times without an offset, exactly: real calendar dates only (so that a generator
# working from the schema never produces one that is refused).
LOCAL_DATE_TIME_PATTERN = f"^{_DATE}{_TIME}$"

_PARTS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)
_US_PER_DAY = 86_400 * 10**6
_DAYS_PER_400_YEARS = 146_097
_LAST_US = date(9999, 12, 31).toordinal() * _US_PER_DAY - 1
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _ordinal(year: int, month: int, day: int) -> int:
    """Proleptic Gregorian day number (0001-01-01 is 1), year 0000 included; ValueError if no such day."""
    if year == 0:  # 400 years before year 400, which has the same calendar
        return date(400, month, day).toordinal() - _DAYS_PER_400_YEARS
    return date(year, month, day).toordinal()


def _offset_seconds(offset: str | None) -> int | None:
    if offset is None or offset in "Zz":
        return 0
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        return None
    return (hours * 60 + minutes) * 60 * (1 if offset[0] == "+" else -1)


def parse_poll_time(value: str) -> str | None:
    """`value` as an ISO-8601 UTC string (`…Z`), or None when it is not an accepted date-time."""
    match = _PARTS.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset = _offset_seconds(match.group(8))
    if offset is None or hour > 23 or minute > 59 or second > 60:
        return None
    try:
        ordinal = _ordinal(year, month, day)
    except ValueError:
        return None
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    if second == 60:
        second, micro = 59, 999_999
    seconds = ((ordinal - 1) * 24 + hour) * 3600 + minute * 60 + second - offset
    total = min(max(seconds * 10**6 + micro, 0), _LAST_US)
    return iso_z(_EPOCH + timedelta(microseconds=total))

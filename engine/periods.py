"""Reporting periods: calendar months, quarters and years in a time zone, and calendar arithmetic on them."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo


@dataclass(frozen=True)
class Period:
    """A reporting period ``[start, end)``; ``label`` is how reports name it (2026-11, 2026-Q4, 2026)."""

    start: datetime
    end: datetime
    label: str

    def holds(self, moment: datetime | None) -> bool:
        """True when the moment falls in the period."""
        return moment is not None and self.start <= moment < self.end


def month(year: int, number: int, tz: tzinfo) -> Period:
    """The calendar month in the reporting time zone."""
    start = datetime(year, number, 1, tzinfo=tz)
    return Period(start, add_months(start, 1), f"{year}-{number:02d}")


def quarter_of(moment: datetime) -> Period:
    """The calendar quarter holding a moment (in the moment's own time zone)."""
    number = (moment.month - 1) // 3 + 1
    start = datetime(moment.year, 3 * number - 2, 1, tzinfo=moment.tzinfo)
    return Period(start, add_months(start, 3), f"{moment.year}-Q{number}")


def year(number: int, tz: tzinfo) -> Period:
    """The calendar year in the reporting time zone."""
    return Period(datetime(number, 1, 1, tzinfo=tz), datetime(number + 1, 1, 1, tzinfo=tz), str(number))


def months_of(period: Period) -> list[Period]:
    """The calendar months that start inside a period."""
    result, start = [], period.start
    while start < period.end:
        result.append(month(start.year, start.month, start.tzinfo))
        start = add_months(start, 1)
    return result


def add_months(moment: datetime, count: int) -> datetime:
    """The same wall-clock time ``count`` months later (or earlier), the day clamped to the month's end."""
    index = moment.year * 12 + moment.month - 1 + count
    target_year, target_month = divmod(index, 12)
    next_first = date(target_year + (target_month == 11), (target_month + 1) % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return moment.replace(year=target_year, month=target_month + 1, day=min(moment.day, last_day))


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """The last moment of a calendar day in the time zone: a deadline given as a date is met up to it."""
    return datetime.combine(day, time.max, tzinfo=tz)

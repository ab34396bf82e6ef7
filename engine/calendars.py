"""Business calendars and ISO 8601 time arithmetic: when a deadline falls, in calendar or working time.

A :class:`BusinessCalendar` is read from ``calendar.yaml`` (the shipped one is China's: Monday to
Friday, office hours, the State Council's public holidays and the make-up working days 调休 that
move a weekend day into the working week). It answers two questions for the rest of the engine:
is this moment working time, and what moment lies a duration after another one.

Durations are ISO 8601 (``PT2H``, ``P2D``, ``P3M``). In calendar time they are added as on a
wall clock in the calendar's zone (months and years keep the day of the month, clamped to the
month's end). In working time:

- days count working days: the start is first moved to the next working moment, then each day
  steps to the next working day at the same time of day (Friday 10:00 + ``P2D`` is Tuesday 10:00,
  or later when holidays intervene);
- hours, minutes and seconds count only time inside working hours, so ``PT16H`` is two full days
  of office hours, skipping nights, lunch breaks, weekends and holidays;
- years, months and weeks are refused: they have no single working-time meaning.

Recurring intervals (``R/2026-01-05T09:00+08:00/P3M``, ``R4/P1W``) describe timer cycles; their
occurrences are anchored on the start, so a three-month cycle from 5 January stays on the 5th.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import yamlfile
from .errors import DefinitionError

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")
_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
WORKING, CALENDAR = "working", "calendar"
TIME_BASES = (CALENDAR, WORKING)


class DurationError(ValueError):
    """Text that is not an ISO 8601 duration or recurring interval qproc can use; the message says why."""


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration, component by component (months and years have no fixed length)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0

    @property
    def clock_time(self) -> timedelta:
        """The hours, minutes and seconds part as a timedelta."""
        return timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)

    def isoformat(self) -> str:
        """The ISO 8601 text of this duration (``PT0S`` when it is zero)."""
        date_part = "".join(f"{v}{u}" for v, u in ((self.years, "Y"), (self.months, "M"), (self.weeks, "W"),
                                                   (self.days, "D")) if v)
        time_part = "".join(f"{v:g}{u}" for v, u in ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S")) if v)
        if not date_part and not time_part:
            return "PT0S"
        return f"P{date_part}" + (f"T{time_part}" if time_part else "")

    def times(self, factor: int) -> "Duration":
        """This duration repeated ``factor`` times (``P3M`` × 2 = ``P6M``)."""
        return Duration(*(getattr(self, f) * factor for f in self.__dataclass_fields__))


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration such as ``PT2H``, ``P2D`` or ``P1Y6M``; DurationError when it is not one."""
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise DurationError(f"{text!r} is not an ISO 8601 duration (e.g. PT2H, P2D, P3M)")
    parts = {k: (float(v) if k == "seconds" else int(v)) for k, v in match.groupdict().items() if v}
    return Duration(**parts)


def is_duration(text: Any) -> bool:
    """Whether ``text`` is an ISO 8601 duration string."""
    try:
        parse_duration(text)
    except DurationError:
        return False
    return True


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise DurationError(f"{text!r} is not an ISO 8601 date and time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


@dataclass(frozen=True)
class Recurrence:
    """A recurring interval: ``repeat`` occurrences (None: no end), the first at ``start``, ``period`` apart."""

    repeat: int | None
    start: datetime
    period: Duration

    def occurrence(self, index: int) -> datetime | None:
        """The moment of occurrence ``index`` (0 is the start), None past the last one."""
        if self.repeat is not None and index >= self.repeat:
            return None
        return add_calendar_time(self.start, self.period.times(index), timezone.utc)

    def first_index_from(self, moment: datetime) -> int:
        """The index of the first occurrence at or after ``moment`` (past the end when there is none)."""
        index = 0
        fixed = not (self.period.years or self.period.months)
        if fixed and moment > self.start:  # a period of fixed length: jump close, then step
            step = timedelta(weeks=self.period.weeks, days=self.period.days) + self.period.clock_time
            index = max((moment - self.start) // step - 1, 0)
        while (when := self.occurrence(index)) is not None and when < moment:
            index += 1
        return index


def parse_recurrence(text: str, now: datetime) -> Recurrence:
    """Parse ``R[n]/start/duration`` or ``R[n]/duration`` (first occurrence one period after ``now``)."""
    parts = text.strip().split("/")
    if not parts[0].upper().startswith("R") or len(parts) not in (2, 3):
        raise DurationError(f"{text!r} is not a recurring interval (e.g. R/2026-01-05T09:00:00+08:00/P3M or R4/PT1H)")
    count = parts[0][1:]
    if count and not count.isdigit():
        raise DurationError(f"{text!r}: the repeat count {count!r} is not a number")
    period = parse_duration(parts[-1])
    if period == Duration():
        raise DurationError(f"{text!r}: the period must not be zero")
    start = parse_moment(parts[1]) if len(parts) == 3 else add_calendar_time(now, period, timezone.utc)
    return Recurrence(repeat=int(count) if count else None, start=start, period=period)


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return day.replace(year=year, month=month, day=min(day.day, (following - timedelta(days=1)).day))


def add_calendar_time(start: datetime, duration: Duration, zone) -> datetime:
    """``start`` plus ``duration`` on the wall clock of ``zone``; returned in UTC."""
    local = start.astimezone(zone)
    day = _add_months(local.date(), duration.years * 12 + duration.months)
    day += timedelta(weeks=duration.weeks, days=duration.days)
    wall = datetime.combine(day, local.time(), tzinfo=zone)
    return wall.astimezone(timezone.utc) + duration.clock_time


def _parse_clock(text: str, where: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise DefinitionError(f"{where}: {text!r} is not a time of day (HH:MM)") from None


class BusinessCalendar:
    """Working days, working hours, holidays and make-up working days in one time zone."""

    def __init__(self, name: str, zone: str, working_days: set[int], working_hours: list[tuple[time, time]],
                 holidays: dict[date, str], workdays: dict[date, str]):
        self.name = name
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self.working_days = frozenset(working_days)
        self.working_hours = tuple(sorted(working_hours))
        self.holidays = dict(sorted(holidays.items()))
        self.workdays = dict(sorted(workdays.items()))

    # --- reading ------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: object, file_name: str = "calendar") -> "BusinessCalendar":
        """Build and validate a calendar from parsed YAML; raises DefinitionError naming the problem."""
        if not isinstance(raw, dict):
            raise DefinitionError("expected a mapping with timezone, working_days, working_hours, holidays", file_name)
        zone = str(raw.get("timezone") or "")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DefinitionError(f"timezone {zone!r} is not a known time zone (e.g. Asia/Shanghai)", file_name) from None
        days = raw.get("working_days") or []
        unknown = [d for d in days if str(d).lower()[:3] not in _WEEKDAYS]
        if not days or unknown:
            raise DefinitionError(f"working_days must list weekdays (mon … sun); not understood: {unknown}", file_name)
        hours = []
        for span in raw.get("working_hours") or []:
            start, sep, end = str(span).partition("-")
            period = (_parse_clock(start, file_name), _parse_clock(end, file_name)) if sep else None
            if period is None or period[0] >= period[1]:
                raise DefinitionError(f"working_hours entry {span!r} is not a period like 08:30-12:00", file_name)
            hours.append(period)
        if not hours:
            raise DefinitionError("working_hours must list at least one period like 08:30-12:00", file_name)
        hours.sort()
        if any(a[1] > b[0] for a, b in zip(hours, hours[1:])):
            raise DefinitionError("working_hours periods overlap", file_name)
        holidays = _day_names(raw.get("holidays"), "holidays", file_name)
        workdays = _day_names(raw.get("workdays"), "workdays", file_name)
        both = sorted(holidays.keys() & workdays.keys())
        if both:
            raise DefinitionError(f"{both[0]} is listed both as a holiday and as a make-up working day", file_name)
        return cls(str(raw.get("name") or "business calendar"), zone,
                   {_WEEKDAYS[str(d).lower()[:3]] for d in days}, hours, holidays, workdays)

    @classmethod
    def from_yaml(cls, text: str, file_name: str = "calendar.yaml") -> "BusinessCalendar":
        """Parse ``calendar.yaml`` text; raises DefinitionError with the file (and line for YAML syntax errors)."""
        raw = yamlfile.parse(text, file_name)
        return cls.from_dict(raw, file_name)

    def to_dict(self) -> dict:
        """The calendar as plain data, the inverse of :meth:`from_dict`."""
        names = {v: k for k, v in _WEEKDAYS.items()}
        return {
            "name": self.name, "timezone": self.zone_name,
            "working_days": [names[d] for d in sorted(self.working_days)],
            "working_hours": [f"{a:%H:%M}-{b:%H:%M}" for a, b in self.working_hours],
            "holidays": [{"date": d.isoformat(), "name": n} for d, n in self.holidays.items()],
            "workdays": [{"date": d.isoformat(), "name": n} for d, n in self.workdays.items()],
        }

    # --- questions ----------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is worked: a make-up working day, or a working weekday that is no holiday."""
        if day in self.workdays:
            return True
        return day not in self.holidays and day.isoweekday() in self.working_days

    def is_working_time(self, moment: datetime) -> bool:
        """Whether ``moment`` falls inside working hours of a working day (periods include their start)."""
        local = moment.astimezone(self.zone)
        now = local.time().replace(tzinfo=None)
        return self.is_working_day(local.date()) and any(a <= now < b for a, b in self.working_hours)

    def end_of_day(self, day: date) -> datetime:
        """The end of ``day`` in this calendar's zone (midnight after it), in UTC."""
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone).astimezone(timezone.utc)

    def add(self, start: datetime, duration: Duration | str, basis: str = CALENDAR) -> datetime:
        """The moment ``duration`` after ``start``, counted in calendar or working time; in UTC."""
        if isinstance(duration, str):
            duration = parse_duration(duration)
        if basis == CALENDAR:
            return add_calendar_time(start, duration, self.zone)
        if duration.years or duration.months or duration.weeks:
            raise DurationError(f"working time counts days, hours and minutes; years, months and weeks "
                                f"are not allowed (got {duration.isoformat()})")
        if duration == Duration():
            return start.astimezone(timezone.utc)
        moment = self._next_working_moment(start.astimezone(self.zone))
        if duration.days:
            day = moment.date()
            for _ in range(duration.days):
                day = self._next_working_day(day)
            moment = datetime.combine(day, moment.time(), tzinfo=self.zone)
        return self._add_working_clock_time(moment, duration.clock_time).astimezone(timezone.utc)

    # --- working-time arithmetic --------------------------------------------------------------

    def _next_working_day(self, day: date) -> date:
        for _ in range(3660):  # ten years without a working day means the calendar is broken
            day += timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise DurationError(f"calendar '{self.name}' has no working day in the ten years after {day}")

    def _periods_from(self, moment: datetime):
        """Working periods (start, end) in local time that end after ``moment``, in order."""
        day = moment.date()
        if not self.is_working_day(day):
            day = self._next_working_day(day)
        while True:
            for a, b in self.working_hours:
                start = datetime.combine(day, a, tzinfo=self.zone)
                end = datetime.combine(day, b, tzinfo=self.zone)
                if end > moment:
                    yield max(start, moment), end
            day = self._next_working_day(day)

    def _next_working_moment(self, moment: datetime) -> datetime:
        return next(self._periods_from(moment))[0]

    def _add_working_clock_time(self, moment: datetime, remaining: timedelta) -> datetime:
        for start, end in self._periods_from(moment):
            if remaining <= end - start:
                return start + remaining
            remaining -= end - start
        raise AssertionError("unreachable: working periods never run out")


def _day_names(entries: object, key: str, file_name: str) -> dict[date, str]:
    """Read a list of ``{date, name}`` or ``{from, to, name}`` entries into one name per day."""
    days: dict[date, str] = {}
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise DefinitionError(f"{key}: each entry needs date (or from/to) and name, got {entry!r}", file_name)
        try:
            first = _as_date(entry.get("date", entry.get("from")))
            last = _as_date(entry.get("to", entry.get("date", entry.get("from"))))
        except (TypeError, ValueError):
            raise DefinitionError(f"{key}: {entry!r} does not give dates as YYYY-MM-DD", file_name) from None
        if last < first:
            raise DefinitionError(f"{key}: {entry!r} ends before it starts", file_name)
        day = first
        while day <= last:
            days[day] = str(entry.get("name", ""))
            day += timedelta(days=1)
    return days


def _as_date(value: object) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))

"""Reporting periods: months, quarters and years in a time zone."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from engine import periods

TZ = ZoneInfo("Asia/Shanghai")


def test_adding_a_month_clamps_the_day_to_the_months_end():
    assert periods.add_months(datetime(2026, 3, 31, tzinfo=TZ), -1) == datetime(2026, 2, 28, tzinfo=TZ)
    assert periods.add_months(datetime(2026, 12, 15, tzinfo=TZ), 1) == datetime(2027, 1, 15, tzinfo=TZ)


def test_a_month_starts_at_local_midnight():
    november = periods.month(2026, 11, TZ)
    assert (november.start.isoformat(), november.end.isoformat()) == ("2026-11-01T00:00:00+08:00",
                                                                      "2026-12-01T00:00:00+08:00")
    assert november.holds(datetime(2026, 10, 31, 16, 0, tzinfo=ZoneInfo("UTC")))
    assert not november.holds(november.end)


def test_quarter_of_a_moment_and_the_months_of_a_year():
    assert periods.quarter_of(datetime(2026, 11, 5, tzinfo=TZ)).label == "2026-Q4"
    assert [m.label for m in periods.months_of(periods.year(2026, TZ))][::11] == ["2026-01", "2026-12"]


def test_a_date_deadline_lasts_to_the_end_of_that_day():
    assert periods.end_of_day(date(2026, 11, 5), TZ).isoformat() == "2026-11-05T23:59:59.999999+08:00"

"""Business calendars: working days and hours, Chinese public holidays and make-up days, deadlines across them."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from conftest import CALENDAR_FILE
from engine.calendars import BusinessCalendar, DurationError, parse_duration, parse_recurrence
from engine.errors import DefinitionError

BEIJING = ZoneInfo("Asia/Shanghai")
CHINA = BusinessCalendar.from_yaml(CALENDAR_FILE.read_text(encoding="utf-8"), str(CALENDAR_FILE))


def local(text: str) -> datetime:
    """A Beijing wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def working(start: str, duration: str) -> datetime:
    return CHINA.add(local(start), duration, "working").astimezone(BEIJING)


def test_two_working_days_from_the_friday_before_qingming_land_on_wednesday():
    # Sat 4, Sun 5 and Mon 6 April 2026 are the Qingming holiday.
    assert working("2026-04-03T10:00", "P2D") == local("2026-04-08T10:00")


def test_two_working_days_from_an_ordinary_friday_land_on_tuesday():
    assert working("2026-03-06T10:00", "P2D") == local("2026-03-10T10:00")


def test_a_make_up_sunday_counts_as_a_working_day():
    # Sunday 20 September 2026 is worked (National Day 调休).
    assert working("2026-09-18T10:00", "P2D") == local("2026-09-21T10:00")


def test_a_deadline_crossing_the_spring_festival_skips_the_whole_holiday():
    # Sat 14 Feb is a make-up working day; 15–23 Feb is the Spring Festival.
    assert working("2026-02-13T10:00", "P2D") == local("2026-02-24T10:00")


def test_working_hours_skip_nights_lunch_weekend_and_holiday():
    # Thu 15:00–17:30 (2.5 h) + Fri 8 h, holiday Sat–Mon, Tue 08:30–12:00 (3.5 h) + 13:00–15:00 (2 h).
    assert working("2026-04-02T15:00", "PT16H") == local("2026-04-07T15:00")


def test_a_deadline_set_after_hours_counts_from_the_next_working_morning():
    assert working("2026-04-03T18:00", "P2D") == local("2026-04-09T08:30")
    assert working("2026-03-06T17:30", "PT1H") == local("2026-03-09T09:30")


def test_working_time_refuses_months():
    with pytest.raises(DurationError, match="years, months and weeks are not allowed"):
        CHINA.add(local("2026-03-02T10:00"), "P1M", "working")


def test_calendar_time_keeps_the_wall_clock_and_clamps_month_ends():
    assert CHINA.add(local("2026-04-03T10:00"), "P2D").astimezone(BEIJING) == local("2026-04-05T10:00")
    assert CHINA.add(local("2026-01-31T09:00"), "P1M").astimezone(BEIJING) == local("2026-02-28T09:00")


@pytest.mark.parametrize("day, worked", [
    (date(2026, 10, 1), False),   # National Day
    (date(2026, 10, 10), True),   # make-up Saturday
    (date(2026, 10, 11), False),  # ordinary Sunday
    (date(2026, 10, 12), True),   # ordinary Monday
    (date(2027, 2, 9), False),    # provisional 2027 Spring Festival
])
def test_working_days_follow_weekends_holidays_and_make_up_days(day, worked):
    assert CHINA.is_working_day(day) is worked


def test_shipped_2026_holidays_match_the_state_council_notice():
    days_off_2026 = [d for d in CHINA.holidays if d.year == 2026]
    assert len(days_off_2026) == 33
    assert sorted(d for d in CHINA.workdays if d.year == 2026) == [
        date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
        date(2026, 10, 10)]


def test_a_date_deadline_ends_at_local_midnight():
    assert CHINA.end_of_day(date(2026, 12, 15)) == datetime(2026, 12, 15, 16, 0, tzinfo=timezone.utc)


def test_calendar_survives_its_stored_form():
    again = BusinessCalendar.from_dict(CHINA.to_dict())
    assert again.to_dict() == CHINA.to_dict() and again.holidays == CHINA.holidays


@pytest.mark.parametrize("change, message", [
    ({"timezone": "Mars/Olympus"}, "not a known time zone"),
    ({"working_hours": ["17:00-08:00"]}, "not a period like 08:30-12:00"),
    ({"working_days": ["funday"]}, "not understood"),
    ({"holidays": [{"date": "2026-01-04", "name": "x"}]}, "both as a holiday and as a make-up working day"),
])
def test_invalid_calendar_is_refused_naming_the_problem(change, message):
    with pytest.raises(DefinitionError, match=message):
        BusinessCalendar.from_dict({**CHINA.to_dict(), **change}, "calendar.yaml")


def test_durations_parse_and_refuse_what_is_not_iso():
    assert parse_duration("P1DT2H30M").isoformat() == "P1DT2H30M"
    with pytest.raises(DurationError, match="not an ISO 8601 duration"):
        parse_duration("PT1D")


def test_a_three_month_cycle_stays_on_its_day_of_the_month():
    cycle = parse_recurrence("R/2026-01-31T09:00:00+08:00/P3M", datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert [cycle.occurrence(i).astimezone(BEIJING).date() for i in range(4)] == [
        date(2026, 1, 31), date(2026, 4, 30), date(2026, 7, 31), date(2026, 10, 31)]


def test_a_bounded_cycle_ends():
    cycle = parse_recurrence("R2/2026-01-05T09:00:00+08:00/P6M", datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert cycle.occurrence(1) is not None and cycle.occurrence(2) is None


def test_the_next_occurrence_of_a_long_running_short_cycle_is_found_without_walking_every_one():
    cycle = parse_recurrence("R/2000-01-01T00:00:00Z/PT1M", datetime(2000, 1, 1, tzinfo=timezone.utc))
    moment = datetime(2026, 11, 2, 9, 0, 30, tzinfo=timezone.utc)
    index = cycle.first_index_from(moment)
    assert cycle.occurrence(index) == datetime(2026, 11, 2, 9, 1, tzinfo=timezone.utc)
    assert cycle.occurrence(index - 1) < moment

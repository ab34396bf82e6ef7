"""Reports: read-only summaries of what the engine holds. Nothing here changes anything.

- :func:`overdue`: the open tasks past their due time, now.
- The reports the procedures ask for: the monthly complaint summary 客诉月度汇总 `[003]`
  (:func:`monthly`) and the yearly complaint report for management review `[001 4.3.3]`
  (:func:`review`), and the running month (:func:`current`): the KPI figures of :mod:`kpis` for
  one period, a month-by-month trend, and a note of what they were computed from. A report is
  plain data (:func:`to_dict` gives JSON); ``report_page`` renders it as a page.
"""

from dataclasses import asdict, dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from . import deadlines, kpis, periods, store
from .directory import Organisation
from .errors import NotFound
from .kpi_facts import History
from .kpis import Figure
from .periods import Period
from .store import TaskRow

TREND_MONTHS = 12


@dataclass(frozen=True)
class OverdueTask:
    """An open task past its due time: how late it is and who answers for it now."""

    task: TaskRow
    late: str
    owner: str


def overdue(session: Session, now: datetime, org: Organisation, statuses: tuple[str, ...]) -> list[OverdueTask]:
    """Every task in ``statuses`` (the active ones) whose due time has passed at ``now``, most overdue first."""
    return [OverdueTask(task=t, late=deadlines.late_by(t.due_at, now), owner=deadlines.owner(t, org))
            for t in store.overdue_tasks(session, now, statuses)]


@dataclass
class Report:
    """One report: its figures for the period, the trend by month, and where the numbers came from."""

    kind: str  # monthly, review or current
    title: str
    period: Period
    as_of: datetime
    time_zone: str
    figures: list[Figure]
    trend: list[dict[str, Any]]
    source: dict[str, Any]
    definitions: list[dict[str, str]]

    def figure(self, key: str) -> Figure:
        """The figure of one KPI."""
        return next(f for f in self.figures if f.key == key)


def monthly(session: Session, year: int, number: int, tz: tzinfo, now: datetime) -> Report:
    """The monthly complaint summary: every KPI for the month, with the twelve months up to it as the trend."""
    period = periods.month(year, number, tz)
    return _build(session, "monthly", f"Monthly complaint report 客诉月报 {period.label}", period, now,
                  periods.months_of(Period(periods.add_months(period.start, 1 - TREND_MONTHS), period.end, "")))


def review(session: Session, year: int, tz: tzinfo, now: datetime) -> Report:
    """The yearly complaint report for management review: every KPI for the year, its complete months as the trend."""
    period = periods.year(year, tz)
    return _build(session, "review", f"Complaint report for management review 管理评审客诉报告 {year}", period, now,
                  [m for m in periods.months_of(period) if m.end <= now])


def current(session: Session, tz: tzinfo, now: datetime) -> Report:
    """The figures of the running month so far (overdue items as of now)."""
    local = now.astimezone(tz)
    whole = periods.month(local.year, local.month, tz)
    period = Period(whole.start, whole.end, f"{whole.label} to date")
    return _build(session, "current", f"Current figures 当前指标 {whole.label}", period, now, [])


def _build(session: Session, kind: str, title: str, period: Period, now: datetime, months: list[Period]) -> Report:
    if now <= period.start:
        raise NotFound(f"no history for {period.label} yet: it begins {period.start:%Y-%m-%d %H:%M %Z}")
    as_of = min(period.end, now)
    history = kpis.read_history(session, as_of, period.start.tzinfo)
    return Report(kind=kind, title=title, period=period, as_of=as_of, time_zone=str(period.start.tzinfo),
                  figures=kpis.compute(history, period), trend=trend(history, months),
                  source={**_source(history), "departments": _department_names(session)},
                  definitions=[{"key": k.key, "title": k.title, "definition": k.definition} for k in kpis.KPIS])


def _department_names(session: Session) -> dict[str, str]:
    """Department key → printed name (``sales`` → ``Sales 销售部``) in the organisation in force."""
    row = store.current_organisation(session)
    return {d.key: d.label for d in Organisation.from_dict(row.content).departments.values()} if row else {}


def trend(history: History, months: list[Period]) -> list[dict[str, Any]]:
    """Headline figures month by month, from the first month with a complaint received, up to the history's end."""
    rows = []
    for period in months:
        if period.start >= history.until:
            break
        received, response, closure, capa, satisfaction = kpis.compute(
            history, period, ("complaints_received", "response_time", "closure_time", "capa_effectiveness",
                              "satisfaction"))
        if not rows and not received.value:
            continue
        rows.append({"month": period.label, "received": received.value, "closed": closure.stats["count"],
                     "response_on_time": response.value, "response_median_days": _days(response.stats["median_hours"]),
                     "closure_on_time": closure.value, "closure_median_days": _days(closure.stats["median_hours"]),
                     "capa_effective_first_time": capa.value, "satisfaction": satisfaction.value})
    return rows


def _days(hours: float | None) -> float | None:
    return round(hours / 24, 2) if hours is not None else None


def _source(history: History) -> dict[str, Any]:
    targets = {k: v for k, v in asdict(history.targets).items() if k != "source"}
    return {"events_read": history.events_read, "instances_read": history.instances_read,
            "complaints": len(history.complaints), "capas": len(history.capas),
            "settings_from": history.targets.source or "no procedure deployed", "targets": targets}


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data; times in the report's time zone, ISO 8601."""
    tz = report.period.start.tzinfo
    return _plain({"kind": report.kind, "title": report.title, "period": report.period.label,
                   "start": report.period.start, "end": report.period.end, "as_of": report.as_of,
                   "time_zone": report.time_zone, "figures": [asdict(f) for f in report.figures],
                   "trend": report.trend, "source": report.source, "definitions": report.definitions}, tz)


def _plain(value: Any, tz: tzinfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v, tz) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, tz) for v in value]
    return value

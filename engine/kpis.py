"""Key performance indicators of the quality procedures, defined in one place.

Every figure is computed from the engine's own history — the events — so each one can be traced
back: a figure lists the instances it counted and the numbers of the events it read (the ``#``
column of ``qproc history ID``).

Two tables here make the definitions, a third sits beside them:

- :data:`NAMES` says which process, task and form field the KPIs read. Procedures change; when a
  task is renamed or moves into a called process, the change is one line here.
- :data:`KPIS` lists each KPI with its definition in words (the reports print them) and the
  function that computes its :class:`Figure` from a :class:`~engine.kpi_facts.History` for a period.
- :class:`~engine.kpi_facts.Targets` names the deadlines and targets by their key in
  ``processes/settings.yaml``; they are read from the procedure versions in force, and a
  complaint's own deadlines from the settings pinned when it started.

Periods are half-open, ``[start, end)``, in the reporting time zone. A report reads only events
before its period's end (or before now, for the running period), so a report for a past month
never changes. Medians are the middle value (the mean of the two middle ones for an even count);
P90 is the nearest-rank 90th percentile, a value that occurred.
"""

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from . import kpi_facts
from .kpi_facts import Complaint, History, Names, SurveySource
from .periods import Period, add_months, end_of_day, quarter_of

NAMES = Names(
    complaint_process="customer_complaint",
    intake_task="intake",                    # the complaint form; its last submission is the complaint's record
    customer="customer",
    product="product_model",
    complaint_type="complaint_type",
    quantity="quantity_affected",
    customer_deadline="customer_deadline",
    quality_review_task="quality_review",    # the complaint has reached Quality when this task is first created
    reply_tasks=("reply_customer", "explain_to_customer"),  # the first completion of either is the reply
    surveys=(  # every place a procedure scores customer satisfaction 1-5; each answered task is one survey
        SurveySource("customer_complaint", ("confirm_satisfaction",), ("satisfaction_score",),  # P1 service report
                     satisfied_field="satisfied"),
        SurveySource("customer_satisfaction", ("survey_by_sales", "survey_by_service"),  # P5 满意度调查表
                     ("quality_score", "delivery_score", "service_score", "response_score", "technical_score"),
                     satisfied_setting="satisfaction_threshold"),  # averaged like its score_survey script
        SurveySource("after_sales_service", ("satisfaction_survey",), ("satisfaction_score",)),  # P2 满意度调查表
    ),
    capa_process="capa",                     # P3, called from a complaint or started on its own: its user tasks below
    capa_open_task="form_team",              # its first creation opens the CAPA
    capa_cause_task="analyse_root_cause",    # the root cause form: the failure cause (the latest one counts)
    capa_plan_task="plan_actions",           # the action plan: the planned completion (the first one counts)
    failure_cause="failure_cause",
    planned_completion="planned_completion",
    verify_task="verify_effectiveness",
    effective="effective",
    capa_close_task="close_capa",            # its first completion (with capa_close_field true) closes the CAPA
    capa_close_field=None,                   # None: any completion of capa_close_task closes it
    settings_processes=("customer_complaint", "capa"),  # whose deployed settings hold the targets
)


def read_history(session: Session, until: datetime, tz: tzinfo) -> History:
    """The facts the KPIs count, from the history before ``until``, read with :data:`NAMES`."""
    return kpi_facts.read_history(session, until, tz, NAMES)


# --- figures ---------------------------------------------------------------------------------

@dataclass
class Figure:
    """One KPI for one period: the headline value, its target, and the tables behind it.

    ``tables`` holds the summary tables a chart is drawn from (first one first); ``rows`` lists
    every item counted, each naming its instance, so any figure can be checked by hand.
    ``met`` is None when there is no target or nothing to measure.
    """

    key: str
    title: str
    period: str
    value: float | int | None
    unit: str  # "count", "share" (0-1), "score" (1-5)
    target: float | None = None
    target_text: str = ""
    met: bool | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def share(part: int, whole: int) -> float | None:
    """part / whole rounded to four places; None when there is nothing to divide."""
    return round(part / whole, 4) if whole else None


def nearest_rank(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _hours(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 2)


def _at_least(value, target) -> bool | None:
    return None if value is None or target is None else value >= target


def _at_most(value, target) -> bool | None:
    return None if value is None or target is None else value <= target


def _complaint_columns(c: Complaint) -> dict[str, Any]:
    return {"instance": c.instance_id, "key": c.key, "customer": c.customer, "product": c.product, "type": c.kind}


def _trace(stamp, corrections: list[int]) -> str:
    """The event numbers behind a row: the event counted, and any correction of the data it read."""
    return f"#{stamp.seq}" + (f", corrected #{', #'.join(map(str, corrections))}" if corrections else "")


def _setting(c: Complaint, history: History, key: str):
    """A complaint's own setting (pinned when it started), else the one in force now."""
    value = c.settings.get(key)
    return value if value is not None else getattr(history.targets, key)


Deadline = tuple[datetime, str]  # when something is due, and the rule that says so ("15 d", "customer 2026-11-05")


def _timeliness(key: str, title: str, period: Period, history: History, end_of: Callable[[Complaint], Any],
                deadline_of: Callable[[Complaint], Deadline | None], target_text: str) -> Figure:
    """A duration KPI over the complaints whose ``end_of`` moment falls in the period: time from receipt,
    median and P90, and the share at or before their deadline (those without a deadline are not counted)."""
    rows, hours = [], []
    for c in sorted(history.complaints, key=lambda c: end_of(c).at if end_of(c) else c.received.at):
        end = end_of(c)
        deadline = deadline_of(c) if end and period.holds(end.at) else None
        if deadline is None:
            continue
        hours.append(_hours(c.received.at, end.at))
        rows.append({**_complaint_columns(c), "from": c.received.at, "to": end.at, "hours": hours[-1],
                     "deadline": deadline[0], "deadline_rule": deadline[1], "on_time": end.at <= deadline[0],
                     "events": f"#{c.received.seq}→#{end.seq}"})
    within = sum(r["on_time"] for r in rows)
    value = share(within, len(rows))
    target = history.targets.target_on_time_share
    median = round(statistics.median(hours), 2) if hours else None
    return Figure(key, title, period.label, value, "share", target,
                  f"≥ {target:.0%} {target_text}" if target is not None else target_text, _at_least(value, target),
                  stats={"count": len(rows), "on_time": within, "late": len(rows) - within,
                         "median_hours": median, "p90_hours": nearest_rank(hours, 0.9)},
                  tables={"by type": _rates(rows, "type"), "by product": _rates(rows, "product")}, rows=rows)


def _after_receipt(c: Complaint, history: History, setting: str, unit: str) -> Deadline | None:
    """A deadline a setting puts a number of hours or days after receipt (the complaint's own setting first)."""
    amount = _setting(c, history, setting)
    return (c.received.at + timedelta(**{unit: amount}), f"{amount} {unit[0]}") if amount is not None else None


STEP_DUE = "step due"  # the rule of a deadline taken from a task's due time


def quality_notice(history: History, period: Period) -> Figure:
    """Complaints that reached Quality in the period: the share by the deadline the procedure gives the
    steps before Quality (the due time of the complaint form); complaints without one are not counted."""
    within = history.targets.reach_quality_within
    return _timeliness("quality_notice", "Quality complaints reaching Quality in time", period, history,
                       lambda c: c.reached_quality, lambda c: (c.intake_due, STEP_DUE) if c.intake_due else None,
                       f"by the due time ({within} from receipt)" if within else "by the due time")


def reply_deadline(c: Complaint, history: History) -> Deadline | None:
    """When the customer is owed a reply, counted from receipt: the end of the customer's deadline day,
    else the default days after receipt. (The reply step's own due time is rated with the steps.)"""
    if c.customer_deadline:
        return end_of_day(c.customer_deadline, history.tz), f"customer {c.customer_deadline.isoformat()}"
    return _after_receipt(c, history, "reply_deadline_days", "days")


def response_time(history: History, period: Period) -> Figure:
    """Complaints first replied to in the period: time from receipt, share before the reply deadline."""
    days = history.targets.reply_deadline_days
    return _timeliness("response_time", "Complaint response time (received → reply)", period, history,
                       lambda c: c.first_reply, lambda c: reply_deadline(c, history),
                       f"before the customer's deadline, else within {days} d" if days is not None else "")


def closure_time(history: History, period: Period) -> Figure:
    """Complaints closed in the period: time from receipt, share within the closure deadline."""
    days = history.targets.closure_deadline_days
    return _timeliness("closure_time", "Complaint closure time (received → closed)", period, history,
                       lambda c: c.closed, lambda c: _after_receipt(c, history, "closure_deadline_days", "days"),
                       f"within {days} d" if days is not None else "")


def complaints_received(history: History, period: Period) -> Figure:
    """Complaints received in the period, by type, customer and product."""
    found = [c for c in history.complaints if period.holds(c.received.at)]
    rows = [{**_complaint_columns(c), "received": c.received.at, "quantity": c.quantity,
             "status": _status(c, history.until), "events": _trace(c.received, c.corrections)} for c in found]
    return Figure("complaints_received", "Complaints received", period.label, len(rows), "count",
                  tables={"by type": _counts(rows, "type"), "by customer": _counts(rows, "customer"),
                          "by product": _counts(rows, "product")},
                  rows=rows)


def _status(c: Complaint, moment: datetime) -> str:
    if c.closed and c.closed.at < moment:
        return "closed"
    return "cancelled" if c.cancelled and c.cancelled.at < moment else "open"


def _counts(rows: list[dict], column: str) -> list[dict[str, Any]]:
    counted = Counter(row[column] or "(not recorded)" for row in rows)
    return [{column: name, "count": count} for name, count in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]


def on_time_tasks(history: History, period: Period) -> Figure:
    """Human tasks with a due time completed in the period: the share completed by it, per department and step."""
    done = sorted((t for t in history.tasks if period.holds(t.completed.at if t.completed else None) and t.due_at),
                  key=lambda t: t.completed.at)
    rows = [{"instance": t.instance_id, "key": t.key, "task": t.id, "step": f"{t.process}/{t.name}",
             "department": t.department, "due": t.due_at, "completed": t.completed.at,
             "on_time": t.completed.at <= t.due_at, "events": f"#{t.created.seq}→#{t.completed.seq}"} for t in done]
    value = share(sum(r["on_time"] for r in rows), len(rows))
    target = history.targets.target_on_time_share
    return Figure("on_time_tasks", "Steps completed on time", period.label, value, "share", target,
                  f"≥ {target:.0%} of steps by their due time" if target is not None else "",
                  _at_least(value, target), stats={"count": len(rows), "on_time": sum(r["on_time"] for r in rows)},
                  tables={"by department": _rates(rows, "department"), "by step": _rates(rows, "step")}, rows=rows)


def _rates(rows: list[dict], column: str) -> list[dict[str, Any]]:
    """Rows grouped by a column: how many, how many on time and late, the share on time (and median hours)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row[column] or "(not recorded)"].append(row)
    table = []
    for name, members in sorted(groups.items()):
        on_time = sum(r["on_time"] for r in members)
        entry = {column: name, "count": len(members), "on_time": on_time, "late": len(members) - on_time,
                 "share": share(on_time, len(members))}
        if "hours" in members[0]:
            entry["median_hours"] = round(statistics.median(r["hours"] for r in members), 2)
        table.append(entry)
    return table


def capa_on_time(history: History, period: Period) -> Figure:
    """CAPAs closed in the period: the share closed by the completion date committed on the first action plan."""
    rows = []
    for capa in sorted((c for c in history.capas if period.holds(c.closed.at if c.closed else None)),
                       key=lambda c: c.closed.at):
        due = capa.planned_completion
        rows.append({"instance": capa.instance_id, "key": capa.key, "opened": capa.opened.at, "planned": due,
                     "closed": capa.closed.at, "cause": capa.failure_cause,
                     "on_time": due is not None and capa.closed.at <= end_of_day(due, history.tz),
                     "events": f"#{capa.opened.seq}→#{capa.closed.seq}"})
    value = share(sum(r["on_time"] for r in rows), len(rows))
    target = history.targets.target_on_time_share
    return Figure("capa_on_time", "CAPAs closed on time", period.label, value, "share", target,
                  f"≥ {target:.0%} by the planned completion date" if target is not None else "",
                  _at_least(value, target), stats={"count": len(rows), "on_time": sum(r["on_time"] for r in rows)},
                  rows=rows)


def capa_effectiveness(history: History, period: Period) -> Figure:
    """CAPAs first verified in the period: the share found effective at that first verification."""
    rows = []
    for capa in history.capas:
        if capa.verifications and period.holds(capa.verifications[0][0].at):
            stamp, effective = capa.verifications[0]
            rows.append({"instance": capa.instance_id, "key": capa.key, "verified": stamp.at, "effective": effective,
                         "verifications": len(capa.verifications), "cause": capa.failure_cause,
                         "events": f"#{stamp.seq}"})
    rows.sort(key=lambda r: r["verified"])
    effective = sum(r["effective"] for r in rows)
    return Figure("capa_effectiveness", "CAPAs effective at first verification", period.label,
                  share(effective, len(rows)), "share", stats={"count": len(rows), "effective": effective},
                  rows=rows)


AGING_BUCKETS = ((7, "1-7 d"), (30, "8-30 d"), (90, "31-90 d"), (None, "> 90 d"))


def _bucket(days_late: float) -> str:
    return next(label for limit, label in AGING_BUCKETS if limit is None or days_late <= limit)


def overdue(history: History, period: Period) -> Figure:
    """Open items past their deadline at the end of the period (or now), by how long overdue.

    Items: complaints past their closure deadline, CAPAs past their planned completion, steps past their due time.
    """
    moment = min(period.end, history.until)
    items = []
    for c in history.complaints:
        days = _setting(c, history, "closure_deadline_days")
        if days is not None and c.open_at(moment):
            items.append(("complaint", c.instance_id, c.key, "", c.received.at + timedelta(days=days), c.received))
    for capa in history.capas:
        if capa.planned_completion and capa.open_at(moment):
            items.append(("CAPA", capa.instance_id, capa.key, "", end_of_day(capa.planned_completion, history.tz),
                          capa.opened))
    for t in history.tasks:
        if t.due_at and t.open_at(moment):
            items.append(("step", t.instance_id, t.key, f"{t.name} ({t.department}, task {t.id})", t.due_at, t.created))
    rows = []
    for kind, instance_id, key, what, deadline, stamp in items:
        if deadline < moment:
            late = round((moment - deadline).total_seconds() / 86400, 2)
            rows.append({"kind": kind, "instance": instance_id, "key": key, "what": what, "deadline": deadline,
                         "days_overdue": late, "bucket": _bucket(late), "events": f"#{stamp.seq}"})
    rows.sort(key=lambda r: -r["days_overdue"])
    table = [{"bucket": label, **{kind: sum(1 for r in rows if r["bucket"] == label and r["kind"] == kind)
                                  for kind in ("complaint", "CAPA", "step")}} for _, label in AGING_BUCKETS]
    return Figure("overdue", "Overdue open items", f"as of {moment.astimezone(history.tz):%Y-%m-%d %H:%M}",
                  len(rows), "count", 0,
                  "none overdue", not rows, tables={"by age": table}, rows=rows)


def repeat_complaints(history: History, period: Period) -> Figure:
    """Complaints received in the period whose customer complained about the same product within N months before."""
    months = history.targets.repeat_window_months
    rows = []
    if months is not None:
        by_pair: dict[tuple[str, str], list[Complaint]] = defaultdict(list)
        for c in sorted(history.complaints, key=lambda c: c.received.at):
            if c.customer and c.product:
                by_pair[(c.customer.casefold(), c.product.casefold())].append(c)
        for c in sorted(history.complaints, key=lambda c: c.received.at):
            if not (period.holds(c.received.at) and c.customer and c.product):
                continue
            window = add_months(c.received.at.astimezone(history.tz), -months)
            earlier = [d for d in by_pair[(c.customer.casefold(), c.product.casefold())]
                       if window <= d.received.at < c.received.at]
            if earlier:
                rows.append({**_complaint_columns(c), "received": c.received.at,
                             "earlier": [d.instance_id for d in earlier], "events": f"#{c.received.seq}"})
    return Figure("repeat_complaints", "Repeat complaints", period.label, len(rows), "count",
                  stats={"window_months": months}, tables={"by customer": _counts(rows, "customer")}, rows=rows)


def failure_causes(history: History, period: Period) -> Figure:
    """CAPAs opened, by failure cause and quarter, against the limit per cause per quarter.

    Each quarter the period touches counts up to the period's end (quarter to date for a month).
    The value is the highest count of one cause in one quarter.
    """
    limit = history.targets.target_max_repeats_per_quarter
    rows, per_quarter = [], []
    for quarter in _quarters_touching(period):
        window = Period(quarter.start, min(quarter.end, period.end), quarter.label)
        opened = sorted((c for c in history.capas if window.holds(c.opened.at)), key=lambda c: c.opened.at)
        counted = Counter(c.failure_cause or "(not analysed yet)" for c in opened)
        for cause, count in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])):
            per_quarter.append({"quarter": quarter.label, "cause": cause, "count": count,
                                "over_limit": limit is not None and count > limit})
        rows.extend({"quarter": quarter.label, "instance": c.instance_id, "key": c.key, "opened": c.opened.at,
                     "cause": c.failure_cause or "(not analysed yet)", "events": _trace(c.opened, c.corrections)}
                    for c in opened)
    totals = Counter(row["cause"] for row in rows)
    pareto, running = [], 0
    for cause, count in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
        running += count
        pareto.append({"cause": cause, "count": count, "cumulative_share": share(running, len(rows))})
    worst = max((row["count"] for row in per_quarter), default=0)
    return Figure("failure_causes", "Failure causes per quarter", _quarters_label(period, history), worst, "count",
                  limit,
                  f"≤ {limit} of one cause a quarter" if limit is not None else "", _at_most(worst, limit),
                  stats={"capas": len(rows)}, tables={"by cause": pareto, "by quarter": per_quarter}, rows=rows)


def _quarters_label(period: Period, history: History) -> str:
    quarters = _quarters_touching(period)
    label = quarters[0].label if len(quarters) == 1 else f"{quarters[0].label} to {quarters[-1].label}"
    end = min(period.end, history.until)
    if quarters[-1].end <= end:
        return label
    return f"{label} to date ({(end - timedelta(microseconds=1)).astimezone(history.tz):%Y-%m-%d})"


def _quarters_touching(period: Period) -> list[Period]:
    quarters, moment = [], period.start
    while moment < period.end:
        quarter = quarter_of(moment)
        quarters.append(quarter)
        moment = quarter.end
    return quarters


def pieces_per_occurrence(history: History, period: Period) -> Figure:
    """Complaints received in the period with more pieces affected than the limit for one occurrence."""
    limit = history.targets.target_max_pieces_per_occurrence
    rows = [{**_complaint_columns(c), "received": c.received.at, "quantity": c.quantity, "events": f"#{c.received.seq}"}
            for c in sorted(history.complaints, key=lambda c: c.received.at)
            if period.holds(c.received.at) and limit is not None and (c.quantity or 0) > limit]
    return Figure("pieces_per_occurrence", "Occurrences above the pieces limit", period.label, len(rows), "count",
                  0 if limit is not None else None, f"none above {limit} pieces" if limit is not None else "",
                  not rows if limit is not None else None, rows=rows)


def satisfaction(history: History, period: Period) -> Figure:
    """Satisfaction surveys of every procedure answered in the period (score 1-5), and the response rate of
    those asked in it."""
    asked = [t for t in history.tasks if _survey_task(t) and period.holds(t.created.at)]
    answered = [t for t in asked if t.completed]
    responses = sorted((s for s in history.surveys if period.holds(s.answered.at)), key=lambda s: s.answered.at)
    rows = [{"source": s.process, "instance": s.instance_id, "key": s.key, "task": s.task, "answered": s.answered.at,
             "score": s.score, "satisfied": s.satisfied, "events": _trace(s.answered, s.corrections)}
            for s in responses]
    scored = [r for r in rows if r["score"] is not None]
    value = round(statistics.fmean(r["score"] for r in scored), 2) if scored else None
    target = history.targets.target_satisfaction_score
    return Figure("satisfaction", "Customer satisfaction score", period.label, value, "score", target,
                  f"≥ {target} of 5 on average" if target is not None else "", _at_least(value, target),
                  stats={"responses": len(rows), "satisfied": sum(r["satisfied"] is True for r in rows),
                         "asked": len(asked), "answered": len(answered),
                         "response_rate": share(len(answered), len(asked))},
                  tables={"by source": _averages(scored, "source"),
                          "by score": [{"score": band, "count": sum(_band(r["score"]) == band for r in scored)}
                                       for band in range(1, 6)]},
                  rows=rows)


def _survey_task(task) -> bool:
    return any(source.asks(task) for source in NAMES.surveys)


def _band(score: float) -> int:
    """The whole score a (possibly averaged) score rounds to, halves up: 4.5 counts under 5."""
    return math.floor(score + 0.5)


def _averages(rows: list[dict], column: str) -> list[dict[str, Any]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        groups[row[column]].append(row["score"])
    return [{column: name, "count": len(scores), "average": round(statistics.fmean(scores), 2)}
            for name, scores in sorted(groups.items())]


def escalations(history: History, period: Period) -> Figure:
    """``task_escalated`` events in the period, by department."""
    found = sorted((e for e in history.escalations if period.holds(e.stamp.at)), key=lambda e: e.stamp.at)
    rows = [{"instance": e.instance_id, "key": e.key, "task": e.task_id, "department": e.department,
             "at": e.stamp.at, "level": e.data.get("level"), "to": e.data.get("to"), "reason": e.data.get("reason"),
             "events": f"#{e.stamp.seq}"} for e in found]
    return Figure("escalations", "Escalations", period.label, len(rows), "count",
                  tables={"by department": _counts(rows, "department")}, rows=rows)


@dataclass(frozen=True)
class Kpi:
    """A KPI: its key, its title and its definition in words, and the function computing it."""

    key: str
    title: str
    definition: str
    compute: Callable[[History, Period], Figure]


N = NAMES
KPIS: tuple[Kpi, ...] = (
    Kpi("complaints_received", "Complaints received 客诉数量",
        f"Instances of '{N.complaint_process}' started in the period (instance_started), by the '{N.complaint_type}', "
        f"'{N.customer}' and '{N.product}' fields of the last '{N.intake_task}' submission.", complaints_received),
    Kpi("quality_notice", "Reaching Quality in time 质量部接收及时率",
        f"Complaints whose '{N.quality_review_task}' task was first created in the period: time from instance_started "
        f"to that task_created; on time by the due time of the first '{N.intake_task}' task (the procedure's "
        "reach_quality_within from receipt); complaints whose form has no due time are not counted.", quality_notice),
    Kpi("response_time", "Response time 回复时间",
        f"Complaints first replied to in the period (the first task_completed of {' or '.join(N.reply_tasks)}): time "
        f"from instance_started; on time by the end of the '{N.customer_deadline}' day on the complaint form, "
        "else within the complaint's reply_deadline_days setting. (The reply step's own due time is rated under "
        "steps on time.)", response_time),
    Kpi("closure_time", "Closure time 结案时间",
        "Complaints closed in the period (instance_completed: the customer confirmed satisfaction or accepted the "
        "explanation): time from instance_started; on time within the closure_deadline_days setting.", closure_time),
    Kpi("on_time_tasks", "Steps on time 各步骤及时率",
        "Human tasks completed in the period that carry a due time (the 'due' of their task_created): on time when "
        "task_completed is at or before it; per department and per step.", on_time_tasks),
    Kpi("capa_on_time", "CAPA closed on time 纠正措施按期关闭率",
        f"CAPAs closed in the period (the first task_completed of '{N.capa_close_task}'"
        + (f" with '{N.capa_close_field}' true" if N.capa_close_field else "")
        + f"): on time at or before the end of the '{N.planned_completion}' day on the first '{N.capa_plan_task}' "
        "form.",
        capa_on_time),
    Kpi("capa_effectiveness", "CAPA effective at first verification 一次验证有效率",
        f"CAPAs whose first '{N.verify_task}' was completed in the period: the share with '{N.effective}' true on it.",
        capa_effectiveness),
    Kpi("overdue", "Overdue items 逾期未完成",
        "At the end of the period: open complaints past their closure deadline, open CAPAs past their planned "
        "completion, open steps past their due time; aged 1-7, 8-30, 31-90 and over 90 days.", overdue),
    Kpi("repeat_complaints", "Repeat complaints 重复投诉",
        f"Complaints received in the period whose '{N.customer}' and '{N.product}' (compared ignoring case) match a "
        "complaint received within repeat_window_months before it.", repeat_complaints),
    Kpi("failure_causes", "Failure causes per quarter 失效原因(季度)",
        f"CAPAs opened (first task_created of '{N.capa_open_task}') in each quarter, to the period's end, by the "
        f"'{N.failure_cause}' of their latest '{N.capa_cause_task}' form, against target_max_repeats_per_quarter.",
        failure_causes),
    Kpi("pieces_per_occurrence", "Pieces per occurrence 每次不良数量",
        f"Complaints received in the period whose '{N.quantity}' exceeds target_max_pieces_per_occurrence.",
        pieces_per_occurrence),
    Kpi("satisfaction", "Customer satisfaction 顾客满意度",
        "The average score (1-5) of the satisfaction surveys answered in the period, each counted once with its "
        "procedure: " + "; ".join(
            f"'{s.process}' task {' or '.join(repr(t) for t in s.tasks)} (" + (
                f"'{s.score_fields[0]}'" if len(s.score_fields) == 1 else
                f"the mean of {', '.join(repr(f) for f in s.score_fields)}, rounded to 2 places") + ")"
            for s in N.surveys)
        + ". Response rate: of those tasks created in the period, the share completed by the report's as-of time.",
        satisfaction),
    Kpi("escalations", "Escalations 升级",
        "task_escalated events in the period, by the department of the escalated task.", escalations),
)
del N


def compute(history: History, period: Period, keys: Iterable[str] | None = None) -> list[Figure]:
    """The figures of the KPIs named (all of them by default) for one period, in the order of :data:`KPIS`."""
    wanted = set(keys) if keys is not None else None
    return [kpi.compute(history, period) for kpi in KPIS if wanted is None or kpi.key in wanted]

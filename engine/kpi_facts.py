"""What the history says, in the terms the KPIs count: complaints, CAPAs, satisfaction surveys, human tasks,
escalations.

:func:`read_history` reads every instance event before a moment (one query) and which process each
task belongs to (one query on the task rows), and turns them into facts that keep, for every
moment they record, the number of the event it came from; a task's due time is the one its
``task_created`` event recorded. Which tasks and fields mean what is given by a
:class:`Names` (``kpis.NAMES``); nothing here knows a procedure's vocabulary by itself.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, tzinfo
from itertools import groupby
from typing import Any

from sqlalchemy.orm import Session

from . import store
from .audit import EventKind


@dataclass(frozen=True)
class SurveySource:
    """Where a procedure scores customer satisfaction (1-5): its process, the user tasks holding the answers,
    and the answer fields — one field is the score; several are averaged, rounded to two places as the
    procedure scores them. The customer is satisfied by ``satisfied_field`` when the form asks, else when the
    score reaches the instance's ``satisfied_setting``; with neither the survey does not say."""

    process: str
    tasks: tuple[str, ...]
    score_fields: tuple[str, ...]
    satisfied_field: str | None = None
    satisfied_setting: str | None = None

    def asks(self, task: "Task") -> bool:
        """True when the task is one of this procedure's survey tasks."""
        return task.process == self.process and task.name in self.tasks


@dataclass(frozen=True)
class Names:
    """The procedure vocabulary the KPIs read: process keys, user task ids (BPMN ids) and form fields."""

    complaint_process: str
    intake_task: str
    customer: str
    product: str
    complaint_type: str
    quantity: str
    customer_deadline: str
    quality_review_task: str
    reply_tasks: tuple[str, ...]
    surveys: tuple[SurveySource, ...]
    capa_process: str
    capa_open_task: str
    capa_cause_task: str
    capa_plan_task: str
    failure_cause: str
    planned_completion: str
    verify_task: str
    effective: str
    capa_close_task: str
    capa_close_field: str | None
    settings_processes: tuple[str, ...]


@dataclass(frozen=True)
class Targets:
    """Deadlines and targets, by their key in ``processes/settings.yaml``; None when no procedure in force sets one."""

    reach_quality_within: str | None = None  # shown only: the deadline itself is on the tasks (their due time)
    reply_deadline_days: float | None = None
    closure_deadline_days: float | None = None
    repeat_window_months: int | None = None
    target_max_repeats_per_quarter: int | None = None
    target_max_pieces_per_occurrence: int | None = None
    target_on_time_share: float | None = None
    target_satisfaction_score: float | None = None
    source: str = ""  # the procedure versions they were read from, e.g. "customer_complaint v2"


def read_targets(session: Session, at: datetime, processes: tuple[str, ...]) -> Targets:
    """The targets in the settings of the newest versions of these processes deployed before ``at``."""
    settings: dict[str, Any] = {}
    sources = []
    for process in processes:
        row = store.definition_in_force(session, process, at)
        if row is not None:
            settings.update(row.manifest.get("settings") or {})
            sources.append(f"{process} v{row.version}")
    known = {f.name for f in fields(Targets)} - {"source"}
    return Targets(**{key: settings[key] for key in known if key in settings}, source=", ".join(sources))


@dataclass(frozen=True)
class Stamp:
    """An event a figure reads: when it happened and its number in its instance's history."""

    at: datetime
    seq: int


@dataclass
class Task:
    """A human task as its events tell it (``process`` is from its row: the events do not name it)."""

    id: int
    instance_id: int
    key: str | None
    process: str
    name: str
    department: str
    created: Stamp
    due_at: datetime | None
    completed: Stamp | None = None
    cancelled: Stamp | None = None
    data: dict[str, Any] = field(default_factory=dict)  # as submitted, with the corrections before ``until``
    corrections: list[int] = field(default_factory=list)  # event numbers of those corrections

    def open_at(self, moment: datetime) -> bool:
        """True when the task was created and neither completed nor cancelled before the moment."""
        return (self.created.at < moment and not (self.completed and self.completed.at < moment)
                and not (self.cancelled and self.cancelled.at < moment))


@dataclass
class Complaint:
    """A customer complaint instance: what its complaint form records and the moments the KPIs measure.

    ``settings`` are the instance's start data, which hold the settings of the version it started on.
    """

    instance_id: int
    key: str | None
    received: Stamp
    settings: dict[str, Any]
    customer: str
    product: str
    kind: str
    quantity: int | None
    customer_deadline: date | None
    corrections: list[int]  # event numbers of corrections to its complaint form
    reached_quality: Stamp | None
    first_reply: Stamp | None
    intake_due: datetime | None  # the due time of its first complaint form (the steps before Quality)
    closed: Stamp | None
    cancelled: Stamp | None

    def open_at(self, moment: datetime) -> bool:
        """True when the complaint was received and neither closed nor cancelled before the moment."""
        return (self.received.at < moment and not (self.closed and self.closed.at < moment)
                and not (self.cancelled and self.cancelled.at < moment))


@dataclass
class Capa:
    """The corrective and preventive action of one instance (run inside a complaint or on its own).

    ``failure_cause`` is the one on its latest root cause form; ``planned_completion`` the date committed
    on its first action plan, which it is measured against.
    """

    instance_id: int
    key: str | None
    opened: Stamp
    plans: int
    failure_cause: str | None
    corrections: list[int]  # event numbers of corrections to its CAPA forms
    planned_completion: date | None
    verifications: list[tuple[Stamp, bool]]
    closed: Stamp | None
    cancelled: Stamp | None

    def open_at(self, moment: datetime) -> bool:
        """True when the CAPA was opened and neither closed nor cancelled before the moment."""
        return (self.opened.at < moment and not (self.closed and self.closed.at < moment)
                and not (self.cancelled and self.cancelled.at < moment))


@dataclass(frozen=True)
class Survey:
    """One answered satisfaction survey: the procedure and task it came from, when, and its score (1-5).

    ``score`` is None when an answer it is computed from is missing; ``satisfied`` None when the procedure
    does not say."""

    instance_id: int
    key: str | None
    process: str
    task: str
    answered: Stamp
    score: float | None
    satisfied: bool | None
    corrections: list[int]  # event numbers of corrections to its answers


@dataclass(frozen=True)
class Escalation:
    """A ``task_escalated`` event: an overdue task was handed up the escalation ladder."""

    instance_id: int
    key: str | None
    task_id: int | None
    department: str
    stamp: Stamp
    data: dict


@dataclass
class History:
    """Everything the KPIs read, taken from the events before ``until``."""

    until: datetime
    tz: tzinfo
    targets: Targets
    complaints: list[Complaint]
    capas: list[Capa]
    surveys: list[Survey]
    tasks: list[Task]
    escalations: list[Escalation]
    events_read: int
    instances_read: int


def read_history(session: Session, until: datetime, tz: tzinfo, names: Names) -> History:
    """Read the history before ``until`` into the facts the KPIs count (two queries)."""
    rows = store.instance_events_before(session, until)
    processes = store.task_processes(session)
    history = History(until=until, tz=tz, targets=read_targets(session, until, names.settings_processes),
                      complaints=[], capas=[], surveys=[], tasks=[], escalations=[], events_read=len(rows), instances_read=0)
    for instance_id, group in groupby(rows, key=lambda row: row[0].instance_id):
        events = list(group)
        history.instances_read += 1
        _read_instance(history, names, instance_id, events[0][1], events[0][2], [e for e, _, _ in events],
                       processes)
    return history


def _read_instance(history: History, names: Names, instance_id: int, process_key: str, key: str | None,
                   events: list, processes: dict[int, str]) -> None:
    tasks: dict[int, Task] = {}
    started = ended = cancelled = None
    start_data: dict[str, Any] = {}
    for event in events:
        stamp = Stamp(event.at, event.seq)
        if event.kind == EventKind.INSTANCE_STARTED.value:
            started, start_data = stamp, event.data.get("data") or {}
        elif event.kind == EventKind.TASK_CREATED.value:
            due = event.data.get("due")
            tasks[event.task_id] = Task(event.task_id, instance_id, key, processes.get(event.task_id, process_key),
                                        event.data["task"], event.data["department"], stamp,
                                        datetime.fromisoformat(due) if due else None)
        elif event.kind == EventKind.TASK_COMPLETED.value:
            tasks[event.task_id].completed, tasks[event.task_id].data = stamp, dict(event.data.get("data") or {})
        elif event.kind == EventKind.TASK_CANCELLED.value:
            tasks[event.task_id].cancelled = stamp
        elif event.kind == EventKind.DATA_CORRECTED.value:
            _correct(tasks[event.task_id], event.data["changes"], stamp)
        elif event.kind == EventKind.INSTANCE_COMPLETED.value:
            ended = stamp
        elif event.kind == EventKind.INSTANCE_CANCELLED.value:
            cancelled = stamp
        elif event.kind == EventKind.TASK_ESCALATED.value:
            task = tasks.get(event.task_id)
            history.escalations.append(Escalation(instance_id, key, event.task_id,
                                                  task.department if task else "", stamp, event.data))
    ordered = sorted(tasks.values(), key=lambda t: t.created.seq)
    history.tasks.extend(ordered)
    if process_key == names.complaint_process and started is not None:
        history.complaints.append(_complaint(names, instance_id, key, started, start_data, ordered, ended, cancelled))
    capa = _capa(names, instance_id, key, ordered, cancelled)
    if capa is not None:
        history.capas.append(capa)
    history.surveys.extend(_surveys(names, ordered, start_data))


def _correct(task: Task, changes: dict[str, dict], stamp: Stamp) -> None:
    """Apply a ``data_corrected`` event: the KPIs read the data as corrected, and remember the correction."""
    for name, change in changes.items():
        if change["new"] is None:
            task.data.pop(name, None)
        else:
            task.data[name] = change["new"]
    task.corrections.append(stamp.seq)


def _done(tasks: list[Task], task_names: Iterable[str]) -> list[Task]:
    """Completed tasks with one of these names, in order of completion."""
    wanted = set(task_names)
    return sorted((t for t in tasks if t.name in wanted and t.completed), key=lambda t: t.completed.seq)


def _complaint(names: Names, instance_id, key, started, start_data, tasks, ended, cancelled) -> Complaint:
    record: dict[str, Any] = {}
    intakes = _done(tasks, [names.intake_task])
    for intake in intakes:
        record.update(intake.data)
    reviews = [t.created for t in tasks if t.name == names.quality_review_task]
    replies = _done(tasks, names.reply_tasks)
    deadline = record.get(names.customer_deadline)
    return Complaint(instance_id, key, started, start_data,
                     customer=str(record.get(names.customer) or "").strip(),
                     product=str(record.get(names.product) or "").strip(),
                     kind=record.get(names.complaint_type) or "", quantity=record.get(names.quantity),
                     customer_deadline=date.fromisoformat(deadline) if deadline else None,
                     corrections=[seq for intake in intakes for seq in intake.corrections],
                     reached_quality=reviews[0] if reviews else None,
                     first_reply=replies[0].completed if replies else None,
                     intake_due=next((t.due_at for t in tasks if t.name == names.intake_task), None),
                     closed=ended, cancelled=cancelled)


def _capa(names: Names, instance_id, key, tasks, cancelled) -> Capa | None:
    capa_tasks = [t for t in tasks if t.process == names.capa_process]
    opening = [t.created for t in capa_tasks if t.name == names.capa_open_task]
    if not opening:
        return None
    cause_tasks = _done(capa_tasks, [names.capa_cause_task])
    plan_tasks = _done(capa_tasks, [names.capa_plan_task])
    plans = [t.data for t in plan_tasks]
    planned = plans[0].get(names.planned_completion) if plans else None
    verifications = [(t.completed, bool(t.data.get(names.effective))) for t in _done(capa_tasks, [names.verify_task])]
    closings = [t.completed for t in _done(capa_tasks, [names.capa_close_task])
                if names.capa_close_field is None or t.data.get(names.capa_close_field)]
    return Capa(instance_id, key, opening[0], plans=len(plans),
                failure_cause=cause_tasks[-1].data.get(names.failure_cause) if cause_tasks else None,
                corrections=sorted(seq for t in (*cause_tasks, *plan_tasks) for seq in t.corrections),
                planned_completion=date.fromisoformat(planned) if planned else None, verifications=verifications,
                closed=closings[0] if closings else None, cancelled=cancelled)


def _surveys(names: Names, tasks: list[Task], start_data: dict[str, Any]) -> list[Survey]:
    """The instance's answered satisfaction surveys, each from the task it was answered on, in order of answer."""
    found = []
    for task in sorted((t for t in tasks if t.completed), key=lambda t: t.completed.seq):
        for source in names.surveys:
            if source.asks(task):
                score = _score(source, task.data)
                found.append(Survey(task.instance_id, task.key, task.process, task.name, task.completed, score,
                                    _satisfied(source, task.data, score, start_data), list(task.corrections)))
    return found


def _score(source: SurveySource, answers: dict[str, Any]) -> float | None:
    values = [answers.get(name) for name in source.score_fields]
    if any(value is None for value in values):
        return None
    return values[0] if len(values) == 1 else round(sum(values) / len(values), 2)


def _satisfied(source: SurveySource, answers: dict[str, Any], score: float | None,
               start_data: dict[str, Any]) -> bool | None:
    if source.satisfied_field is not None:
        return bool(answers.get(source.satisfied_field))
    threshold = start_data.get(source.satisfied_setting) if source.satisfied_setting else None
    return None if threshold is None or score is None else score >= threshold

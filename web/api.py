"""The JSON API under ``/api``, described by the OpenAPI document at ``/api/openapi.json``.

Authenticate with ``Authorization: Bearer <token>`` (``POST /api/token``) or a browser session
(writes then need the ``X-CSRF-Token`` header). Each operation calls the same engine function as
the matching page and CLI command; engine errors come back as ``{"detail": ...}`` with 403 (not
allowed), 404 (unknown), 409 (wrong state) or 422 (invalid, with ``problems`` per field).
"""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

import engine

from .auth import TOKEN_HOURS, api_user
from .diagram import instance_svg
from .params import TEXT, DepartmentFilter, Id, ProcessFilter, ProcessKey


class Problem(BaseModel):
    """Why a request was refused; ``problems`` names each bad form field."""

    detail: Any
    problems: dict[str, str] | None = None


_ERRORS = {401: {"model": Problem, "description": "Not signed in"},
           403: {"model": Problem, "description": "Not allowed"},
           404: {"model": Problem, "description": "No such thing"},
           409: {"model": Problem, "description": "Not possible in the current state"},
           422: {"model": Problem, "description": "Invalid input"}}
router = APIRouter(prefix="/api", tags=["qproc"], responses=_ERRORS)


class TokenRequest(BaseModel):
    """A user's credentials."""

    user: str = Field(min_length=1, max_length=200, pattern=TEXT)
    password: str = Field(min_length=1, max_length=1000)


class TokenOut(BaseModel):
    """A bearer token for the other API calls."""

    access_token: str
    token_type: str = "bearer"
    user: str
    expires_in: int


class TaskOut(BaseModel):
    """A human task."""

    id: int
    instance: int
    process: str
    business_key: str | None
    task: str
    title: str
    department: str
    role: str | None
    form: str
    status: str
    assignee: str | None
    created_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    data: dict[str, Any] | None
    escalated_to: str | None
    escalation_reason: str | None


class FormOut(BaseModel):
    """A task's form: its key, titles, and the JSON Schema a submission must satisfy."""

    key: str
    title: dict[str, str]
    json_schema: dict[str, Any]


class TaskDetail(TaskOut):
    """A task with its form, the case data it sees, its rules, and why the caller may not complete it (if so).

    ``signature``: the meaning an electronic signature gives it (``field:NAME`` takes it from that
    answer); completing it then needs ``password``. ``not_same_as``: tasks whose actor may not do this one.
    """

    form_schema: FormOut
    context: dict[str, Any]
    signature: str | None
    not_same_as: list[str]
    blocked: str | None


class InstanceOut(BaseModel):
    """A case: one run of a process."""

    id: int
    process: str
    version: int
    business_key: str | None
    status: str
    started_by: str
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class InstanceDetail(InstanceOut):
    """A case with all its tasks and its current data."""

    tasks: list[TaskOut]
    data: dict[str, Any]


class EventOut(BaseModel):
    """One history event."""

    seq: int
    at: datetime
    actor: str
    kind: str
    task: int | None
    data: dict[str, Any]
    hash: str


class ProcessOut(BaseModel):
    """A process the caller may start (its newest version)."""

    process: str
    name: str
    version: int


class StartRequest(BaseModel):
    """What to start a case with."""

    business_key: str | None = Field(None, max_length=200, pattern=TEXT)
    data: dict[str, Any] = Field(default_factory=dict)


class StartOut(BaseModel):
    """The new case and its first open tasks."""

    instance: InstanceOut
    tasks: list[TaskOut]


class CompleteRequest(BaseModel):
    """A task's form answers, and the caller's password when the task needs an electronic signature."""

    data: dict[str, Any]
    password: str | None = Field(None, max_length=1000)


class CompleteOut(BaseModel):
    """The completed task, the case after it, and the tasks now open."""

    task: TaskOut
    instance: InstanceOut
    next_tasks: list[TaskOut]


def _task(row) -> TaskOut:
    return TaskOut(id=row.id, instance=row.instance_id, process=row.instance.process_key,
                   business_key=row.instance.business_key, task=row.name, title=row.title,
                   department=row.department, role=row.role, form=row.form_key, status=row.status,
                   assignee=row.assignee, created_at=row.created_at, due_at=row.due_at,
                   completed_at=row.completed_at, completed_by=row.completed_by, data=row.data,
                   escalated_to=row.escalated_to, escalation_reason=row.escalation_reason)


def _instance(row) -> InstanceOut:
    return InstanceOut(id=row.id, process=row.process_key, version=row.definition.version,
                       business_key=row.business_key, status=row.status, started_by=row.started_by,
                       started_at=row.started_at, updated_at=row.updated_at, ended_at=row.ended_at)


def _run(request: Request, work):
    """One transaction; a refusal the history must keep (a wrong signature, separation of duties) is recorded."""
    return engine.audit.run(request.app.state.db, work)


@router.post("/token", response_model=TokenOut)
def token(request: Request, body: TokenRequest) -> TokenOut:
    """Exchange a user's password for a bearer token (401 when the password is wrong)."""
    if not _run(request, lambda s: engine.check_password(s, engine.organisation(s), body.user, body.password)):
        raise HTTPException(401, "wrong user or password", headers={"WWW-Authenticate": "Bearer"})
    return TokenOut(access_token=request.app.state.tokens.issue(body.user), user=body.user,
                    expires_in=TOKEN_HOURS * 3600)


@router.get("/processes", response_model=list[ProcessOut])
def processes(request: Request, user: str = Depends(api_user)) -> list[ProcessOut]:
    """The processes the caller's departments may start."""
    rows = _run(request, lambda s: [ProcessOut(process=r.process_key, name=r.name, version=r.version)
                                    for r in engine.startable(s, user)])
    return rows


@router.post("/processes/{process}/instances", response_model=StartOut, status_code=201)
def start(request: Request, body: StartRequest, process: ProcessKey,
          user: str = Depends(api_user)) -> StartOut:
    """Start a case of a process (its newest version); its first task is usually the intake form."""
    def work(session):
        instance = engine.start(session, process, user, request.app.state.clock(), data=body.data,
                                business_key=body.business_key)
        return StartOut(instance=_instance(instance), tasks=[
            _task(t) for t in engine.store.tasks_of_instance(session, instance.id, engine.ACTIVE_TASK)])

    return _run(request, work)


@router.get("/tasks", response_model=list[TaskOut])
def tasks(request: Request, department: DepartmentFilter = None,
          process: ProcessFilter = None, mine: bool = False, unclaimed: bool = False,
          user: str = Depends(api_user)) -> list[TaskOut]:
    """The caller's inbox: open and claimed tasks of their departments (or one of them) and those escalated to
    them, earliest due first."""
    def work(session):
        departments = engine.visible_departments(session, user, department)
        statuses = ("open",) if unclaimed else engine.ACTIVE_TASK
        return [_task(t) for t in engine.store.inbox(session, departments, statuses, assignee=user if mine else None,
                                                     escalated_to=None if department else user, process=process)]

    return _run(request, work)


@router.get("/tasks/{task_id}", response_model=TaskDetail)
def task(request: Request, task_id: Id, user: str = Depends(api_user)) -> TaskDetail:
    """A task of one of the caller's departments, with its form's JSON Schema and the case data."""
    def work(session):
        view = engine.describe_task(session, task_id, user, request.app.state.clock())
        form = FormOut(key=view.form.key, title=view.form.title, json_schema=view.form.json_schema())
        return TaskDetail(**_task(view.task).model_dump(), form_schema=form, context=view.data,
                          signature=view.rules.signature, not_same_as=list(view.rules.not_same_as),
                          blocked=view.blocked)

    return _run(request, work)


@router.post("/tasks/{task_id}/claim", response_model=TaskOut)
def claim(request: Request, task_id: Id, user: str = Depends(api_user)) -> TaskOut:
    """Claim a task of one's department."""
    return _run(request, lambda s: _task(engine.claim(s, task_id, user, request.app.state.clock())))


@router.post("/tasks/{task_id}/unclaim", response_model=TaskOut)
def unclaim(request: Request, task_id: Id, user: str = Depends(api_user)) -> TaskOut:
    """Put a claimed task back into its department's inbox (its assignee or the department head)."""
    return _run(request, lambda s: _task(engine.unclaim(s, task_id, user, request.app.state.clock())))


@router.post("/tasks/{task_id}/complete", response_model=CompleteOut)
def complete(request: Request, body: CompleteRequest, task_id: Id, user: str = Depends(api_user)) -> CompleteOut:
    """Submit a task's form (with ``password`` when it is signed); 422 with ``problems`` naming every bad field,
    403 when the signature is refused (the refusal is kept in the history)."""
    def work(session):
        done = engine.complete(session, task_id, user, request.app.state.clock(), body.data, password=body.password)
        return CompleteOut(task=_task(done), instance=_instance(done.instance), next_tasks=[
            _task(t) for t in engine.store.tasks_of_instance(session, done.instance_id, engine.ACTIVE_TASK)])

    return _run(request, work)


@router.get("/instances/{instance_id}", response_model=InstanceDetail)
def instance(request: Request, instance_id: Id, user: str = Depends(api_user)) -> InstanceDetail:
    """A case the caller is involved in: status, all tasks and current data."""
    def work(session):
        row = engine.visible_instance(session, instance_id, user)
        return InstanceDetail(**_instance(row).model_dump(), data=engine.instance_data(row),
                              tasks=[_task(t) for t in engine.store.tasks_of_instance(session, instance_id)])

    return _run(request, work)


@router.get("/instances/{instance_id}/history", response_model=list[EventOut])
def history(request: Request, instance_id: Id, user: str = Depends(api_user)) -> list[EventOut]:
    """A case's history: every step, who, when, with which data."""
    def work(session):
        engine.visible_instance(session, instance_id, user)
        return [EventOut(seq=e.seq, at=e.at, actor=e.actor, kind=e.kind, task=e.task_id, data=e.data, hash=e.hash)
                for e in engine.history(session, instance_id)]

    return _run(request, work)


@router.get("/instances/{instance_id}/diagram", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}, "description": "The diagram as SVG"}})
def diagram(request: Request, instance_id: Id, user: str = Depends(api_user)) -> Response:
    """A case's BPMN diagram as SVG, completed steps and the current ones marked."""
    def work(session):
        row = engine.visible_instance(session, instance_id, user)
        return instance_svg(session, row, lambda task_id: f"/tasks/{task_id}")

    return Response(_run(request, work), media_type="image/svg+xml")

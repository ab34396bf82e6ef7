"""The HTML pages: sign-in, inbox, task form, start, case (instance) page.

Each handler reads the request, runs one engine command (or a few reads) in one transaction,
and renders a template. Every form that changes something carries the session's CSRF token;
every page needs a signed-in user, and what they may see or do is decided by the engine.
"""

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

import engine
from engine import runtime
from engine.errors import FormError, Refusal

from . import fields
from .auth import checked_form, csrf_token, local_path, page_user, sign_in, sign_out
from .diagram import instance_svg
from .i18n import LANGUAGES, pick, words
from .params import DepartmentFilter, Id, ProcessFilter, ProcessKey

router = APIRouter(include_in_schema=False)


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200):
    lang = request.session.get("lang", "en")
    base = {"t": words(lang), "lang": lang, "user": request.session.get("user"), "csrf": csrf_token(request),
            "flashes": request.session.pop("flash", []), "path": request.url.path,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "now": request.app.state.clock()}
    return request.app.state.templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


def _flash(request: Request, message: str) -> None:
    request.session["flash"] = [*request.session.get("flash", []), message]


def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def _run(request: Request, work):
    """One transaction; a refusal the history must keep (a wrong signature, separation of duties) is recorded."""
    return engine.audit.run(request.app.state.db, work)


def _who(session, user: str) -> dict[str, Any]:
    """The header's facts about the signed-in user."""
    org = engine.organisation(session)
    return {"me": org.user(user), "my_departments": [org.departments[k] for k in org.departments_of(user)],
            "org": org}


# --- sign-in ---------------------------------------------------------------------------------

@router.get("/login")
def login_page(request: Request, next: str = "/"):
    """The sign-in form."""
    return _render(request, "login.html", {"next": local_path(next), "failed": False})


@router.post("/login")
def login(request: Request, form: FormData = Depends(checked_form)):
    """Check the password (engine.check_password) and start a session; 401 with the form again on failure."""
    user, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
    target = local_path(str(form.get("next", "/")))
    if not (user and password and
            _run(request, lambda s: engine.check_password(s, engine.organisation(s), user, password))):
        return _render(request, "login.html", {"next": target, "failed": True, "given_user": user}, status=401)
    sign_in(request, user)
    return _redirect(target)


@router.post("/logout")
def logout(request: Request, form: FormData = Depends(checked_form)):
    """End the session."""
    sign_out(request)
    return _redirect("/login")


@router.post("/lang")
def choose_language(request: Request, form: FormData = Depends(checked_form)):
    """Switch the page language (English or Chinese) and go back to where the user was."""
    lang = str(form.get("lang", "en"))
    request.session["lang"] = lang if lang in LANGUAGES else "en"
    return _redirect(local_path(str(form.get("next", "/"))))


# --- inbox -----------------------------------------------------------------------------------

@router.get("/")
def inbox(request: Request, department: DepartmentFilter = None,
          process: ProcessFilter = None, show: str = Query("all", pattern="^(all|mine|unclaimed)$"),
          user: str = Depends(page_user)):
    """The user's inbox: open and claimed tasks of their departments and those escalated to them, earliest due
    first, with filters."""
    department, process = department or None, process or None

    def work(session):
        departments = engine.visible_departments(session, user, department)
        statuses = ("open",) if show == "unclaimed" else engine.ACTIVE_TASK
        rows = engine.store.inbox(session, departments, statuses, assignee=user if show == "mine" else None,
                                  escalated_to=None if department else user, process=process)
        processes = {r.process_key: r.name for r in engine.store.list_definitions(session)}
        who = _who(session, user)
        heads = {d.key for d in who["org"].departments.values() if d.head == user}
        return {**who, "tasks": rows, "processes": processes, "heads": heads}

    context = _run(request, work)
    return _render(request, "inbox.html", {**context, "department": department, "process": process, "show": show})


_HANDOVERS = {"claim": engine.claim, "unclaim": engine.unclaim}


@router.post("/tasks/{task_id}/{action}")
def hand_over(request: Request, task_id: Id, action: Literal["claim", "unclaim"],
              form: FormData = Depends(checked_form), user: str = Depends(page_user)):
    """Claim a task of one's department, or put a claimed one back into its inbox; then go back."""
    task = _run(request, lambda s: _HANDOVERS[action](s, task_id, user, request.app.state.clock()))
    _flash(request, f"{task.title}: {words(request.session.get('lang', 'en'))[action]} ✓")
    return _redirect(local_path(str(form.get("next", "")), f"/tasks/{task_id}"))


# --- task ------------------------------------------------------------------------------------

def _task_context(session, task_id: int, user: str, lang: str, now) -> dict[str, Any]:
    view = engine.describe_task(session, task_id, user, now)
    task = view.task
    definition = runtime.definition_of(task.instance.definition)
    forms = definition.forms
    t = words(lang)
    earlier = [(row, fields.answers(forms[row.form_key], row.data, lang, t))
               for row in engine.store.tasks_of_instance(session, task.instance_id, ("completed",))
               if row.id != task.id]
    head = engine.organisation(session).departments[task.department].head
    return {**_who(session, user), "view": view, "task": task, "form": view.form, "earlier": earlier,
            "case_rows": fields.case_data(forms.values(), view.data, lang, t),
            "separated_from": [definition.user_task(task.process, name).title for name in view.rules.not_same_as],
            "form_title": pick(view.form.title, lang, view.form.key),
            "form_description": pick(view.form.description, lang), "department_head": head,
            "submitted": fields.answers(view.form, task.data, lang, t) if task.data else []}


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: Id, user: str = Depends(page_user)):
    """A task: its form (when the user may complete it), the case data and the earlier answers."""
    lang = request.session.get("lang", "en")
    context = _run(request, lambda s: _task_context(s, task_id, user, lang, request.app.state.clock()))
    context["widgets"] = fields.widgets(context["form"], lang, words(lang), context["view"].data)
    return _render(request, "task.html", context)


@router.post("/tasks/{task_id}")
def complete(request: Request, task_id: Id, form: FormData = Depends(checked_form),
             user: str = Depends(page_user)):
    """Submit the form (and the signature password when the task is signed): complete the task and show
    the case; on invalid answers or a refused signature, the form again with each problem beside its field."""
    lang = request.session.get("lang", "en")
    data = fields.submission(form)
    data.pop(fields.SIGNATURE_FIELD, None)
    password = str(form.get(fields.SIGNATURE_FIELD) or "") or None
    view = _run(request, lambda s: engine.describe_task(s, task_id, user))
    problems = {fields.SIGNATURE_FIELD: words(lang)["signature_required"]} if view.rules.signature and not password \
        else {}
    try:
        if problems:
            view.form.validate(data)  # name the other bad fields too, before asking again
        else:
            task = _run(request, lambda s: engine.complete(s, task_id, user, request.app.state.clock(), data,
                                                           password=password))
            _flash(request, f"{task.title} ✓")
            return _redirect(f"/instances/{task.instance_id}")
    except FormError as err:
        problems = {**err.problems, **problems}
    except Refusal as err:
        if err.details.get("rule") != "signature":
            raise
        problems = {fields.SIGNATURE_FIELD: str(err)}
    context = _run(request, lambda s: _task_context(s, task_id, user, lang, request.app.state.clock()))
    context["widgets"] = fields.widgets(context["form"], lang, words(lang), data, problems)
    context["problems"] = problems
    return _render(request, "task.html", context, status=422)


# --- start -----------------------------------------------------------------------------------

@router.get("/start")
def start_page(request: Request, user: str = Depends(page_user)):
    """The processes the user's departments may start."""
    context = _run(request, lambda s: {**_who(s, user), "processes": engine.startable(s, user)})
    return _render(request, "start.html", context)


@router.post("/start/{process}")
def start(request: Request, process: ProcessKey, form: FormData = Depends(checked_form),
          user: str = Depends(page_user)):
    """Start a case and open its first task (the intake form) when it is the user's to fill."""
    key = str(form.get("business_key", "")).strip()[:200] or None

    def work(session):
        instance = engine.start(session, process, user, request.app.state.clock(), business_key=key)
        open_tasks = engine.store.tasks_of_instance(session, instance.id, engine.ACTIVE_TASK)
        mine = set(engine.organisation(session).departments_of(user))
        return instance.id, next((t.id for t in open_tasks if t.department in mine), None)

    instance_id, first_task = _run(request, work)
    return _redirect(f"/tasks/{first_task}" if first_task else f"/instances/{instance_id}")


# --- instance --------------------------------------------------------------------------------

@router.get("/instances/{instance_id}")
def instance_page(request: Request, instance_id: Id, user: str = Depends(page_user)):
    """A case: status, open tasks, data, history and the diagram with its progress."""
    lang = request.session.get("lang", "en")

    def work(session):
        instance = engine.visible_instance(session, instance_id, user)
        forms = runtime.definition_of(instance.definition).forms.values()
        return {**_who(session, user), "instance": instance,
                "tasks": engine.store.tasks_of_instance(session, instance_id),
                "case_rows": fields.case_data(forms, engine.instance_data(instance), lang, words(lang)),
                "events": engine.history(session, instance_id),
                "svg": instance_svg(session, instance, lambda task_id: f"/tasks/{task_id}")}

    return _render(request, "instance.html", _run(request, work))

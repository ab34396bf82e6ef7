"""The ``qproc`` command: a thin layer that parses input, calls one engine function, renders the result.

Every command runs in one database transaction (``Database.run``); engine errors exit 1 with
their message, bad usage exits 2. Listing commands print tables, or JSON with ``--json``.
"""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import engine
from engine import Database, EngineError

console = Console(highlight=False)


def shipped(name: str) -> Path:
    """The path of a file or folder shipped with qproc (``processes``, ``forms``, ``org.yaml``)."""
    try:
        return engine.bootstrap.shipped(name)
    except EngineError as err:
        raise click.ClickException(str(err)) from None


class Context:
    """What every command needs: the database, who acts, and what time it is."""

    def __init__(self, db_url: str | None, actor: str | None, now: str | None):
        self.db = Database(db_url)
        self.actor_name = actor
        self._now = now

    @property
    def actor(self) -> str:
        """The acting user; a usage error when neither --as nor QPROC_USER says who."""
        if not self.actor_name:
            raise click.UsageError("say who is acting: --as USER or the QPROC_USER environment variable")
        return self.actor_name

    @property
    def now(self) -> datetime:
        """The current time (UTC), or the time --now / QPROC_NOW pretends it is."""
        return parse_time(self._now) if self._now else datetime.now(timezone.utc)

    def clock(self) -> datetime:
        """The time for each worker pass: the wall clock, unless --now fixes it."""
        return self.now

    def run(self, work):
        """Run one engine call in one transaction; engine errors become a message and exit code 1.

        A refusal the history must keep (separation of duties, a wrong signature password) is
        recorded by ``engine.audit.run`` in a transaction of its own before the error is shown.
        """
        return self.call(engine.audit.run, self.db, work)

    @staticmethod
    def call(function, *args):
        """Call an engine function; engine errors become a message and exit code 1."""
        try:
            return function(*args)
        except EngineError as err:
            raise click.ClickException(str(err)) from None


def parse_time(text: str, hint: str = "--now") -> datetime:
    """An ISO 8601 time from the command line, aware (UTC when it names no zone); a usage error otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not an ISO 8601 time", param_hint=hint) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


pass_ctx = click.make_pass_decorator(Context)


@click.group()
@click.option("--db", envvar="QPROC_DB", help="Database URL (default sqlite:///qproc.db in this folder).")
@click.option("--as", "actor", envvar="QPROC_USER", help="Who is acting: a user id from the organisation.")
@click.option("--now", envvar="QPROC_NOW", help="Pretend it is this ISO 8601 time (for tests and demos).")
@click.pass_context
def main(ctx: click.Context, db: str | None, actor: str | None, now: str | None) -> None:
    """qproc runs ISO 9001 quality procedures (BPMN 2.0) with department inboxes and a full history."""
    context = Context(db, actor, now)
    ctx.obj = context
    ctx.call_on_close(context.db.dispose)


# --- input and output helpers ----------------------------------------------------------------

def _read_data(data_file: Path | None, pairs: tuple[str, ...], typed: bool) -> dict[str, Any]:
    """Merge --data FILE (JSON or YAML) and --set k=v pairs; ``typed`` reads each value as a YAML scalar."""
    data: dict[str, Any] = {}
    if data_file is not None:
        try:
            loaded = yaml.safe_load(data_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise click.BadParameter(f"cannot read {data_file}: {err}", param_hint="--data") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter(f"{data_file} must hold a mapping of field to value", param_hint="--data")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--set")
        data[key.strip()] = yaml.safe_load(value) if typed and value else value
    return data


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def _task_json(task, now: datetime | None = None) -> dict[str, Any]:
    found = {"id": task.id, "instance": task.instance_id, "process": task.instance.process_key,
             "business_key": task.instance.business_key, "task": task.name, "title": task.title,
             "department": task.department, "role": task.role, "form": task.form_key, "status": task.status,
             "assignee": task.assignee, "created_at": _iso(task.created_at), "due_at": _iso(task.due_at),
             "completed_at": _iso(task.completed_at), "completed_by": task.completed_by, "data": task.data,
             "escalated_to": task.escalated_to, "escalation_level": task.escalation_level,
             "escalation_reason": task.escalation_reason, "revision": task.instance.revision}
    if now is not None:
        found["overdue"] = _is_overdue(task, now)
    return found


def _is_overdue(task, now: datetime) -> bool:
    return task.due_at is not None and task.due_at < now and task.status in engine.ACTIVE_TASK


def _due_cell(task, now: datetime) -> str:
    if task.due_at is None:
        return ""
    late = f"  OVERDUE {engine.late_by(task.due_at, now)}" if _is_overdue(task, now) else ""
    return _time(task.due_at) + late


def _instance_json(instance) -> dict[str, Any]:
    return {"id": instance.id, "process": instance.process_key, "version": instance.definition.version,
            "business_key": instance.business_key, "status": instance.status, "started_by": instance.started_by,
            "started_at": _iso(instance.started_at), "updated_at": _iso(instance.updated_at),
            "ended_at": _iso(instance.ended_at), "revision": instance.revision}


def _event_json(event) -> dict[str, Any]:
    return {"seq": event.seq, "at": _iso(event.at), "actor": event.actor, "kind": event.kind,
            "task": event.task_id, "data": event.data}


def print_history(instance_id: int, events: list) -> None:
    """Render an instance's history as a table."""
    _table(f"History of instance {instance_id}", ["#", "time", "actor", "event", "task", "details"],
           [[e.seq, _time(e.at), e.actor, e.kind, e.task_id, engine.audit.summary(e)] for e in events])


# --- commands --------------------------------------------------------------------------------

@main.group("db")
def db_group() -> None:
    """The database schema: create or upgrade it, see where it stands."""


@db_group.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create the tables in an empty database, or bring them to the schema this qproc needs.

    One transaction: it applies every missing migration or nothing. Back up a database in use first and
    run it from one place while workers are stopped; a new SQLite database needs no upgrade (it is
    created by the first command).
    """
    before, after = ctx.call(ctx.db.upgrade)
    if before == after:
        click.echo(f"{ctx.db.name}: already at schema revision {after}; nothing to do.")
    else:
        click.echo(f"{ctx.db.name}: upgraded from {f'revision {before}' if before else 'empty'} "
                   f"to schema revision {after}.")


@db_group.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Say which schema revision the database is at; exit 1, saying what to run, when qproc cannot use it."""
    revision, problem = ctx.call(ctx.db.schema_status)
    if problem:
        raise click.ClickException(problem)
    click.echo(f"{ctx.db.name}: schema revision {revision}, the one this qproc needs.")


@main.group()
def org() -> None:
    """The organisation: departments, their heads and members."""


@org.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def org_load(ctx: Context, file: Path) -> None:
    """Load an organisation file (org.yaml); it is in force from now on."""
    actor = ctx.actor_name or engine.SYSTEM_ACTOR
    loaded = ctx.run(lambda s: engine.load_organisation(s, file, actor, ctx.now))
    click.echo(f"Loaded {len(loaded.departments)} departments and {len(loaded.users)} users from {file}.")


@org.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def org_show(ctx: Context, as_json: bool) -> None:
    """List the departments with their heads and members."""
    current = ctx.run(engine.organisation)
    if as_json:
        _echo_json(current.to_dict())
        return
    _table("Departments", ["key", "name", "head", "members"],
           [[d.key, d.label, d.head, ", ".join(d.members)] for d in current.departments.values()])


def _deploy_paths(paths: tuple[Path, ...]) -> list[Path]:
    chosen = list(paths) or [Path("processes") if Path("processes").is_dir() else shipped("processes")]
    files: list[Path] = []
    for path in chosen:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".bpmn", ".dmn")))
        else:
            files.append(path)
    if not files:
        raise click.UsageError(f"no .bpmn or .dmn files in {', '.join(map(str, chosen))}")
    return files


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--forms", "forms_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of form files (default: the 'forms' folder beside the processes folder).")
@click.option("--note", help="The revision note: what changed and why (kept with the version).")
@click.option("--new-edition", is_flag=True, help="Label the new versions as the next edition (B/0 after A/n).")
@click.option("--dry-run", is_flag=True, help="Only show what would change and which running instances it affects.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with --dry-run).")
@pass_ctx
def deploy(ctx: Context, paths: tuple[Path, ...], forms_dir: Path | None, note: str | None, new_edition: bool,
           dry_run: bool, as_json: bool) -> None:
    """Check and deploy BPMN/DMN files or folders (default: ./processes, else the shipped ones).

    Each process whose content changed becomes its next version with the next revision label; unchanged
    ones are left as they are. A new version of a controlled procedure is a draft until its document
    change (P4) is approved, unless the database activates versions directly (qproc config).
    """
    files = _deploy_paths(paths)
    folder = files[0].parent
    forms_dir = forms_dir or folder.parent / "forms"
    settings = folder / "settings.yaml"
    if dry_run:
        diffs = ctx.run(lambda s: engine.diff.preview(s, files, forms_dir, settings_file=settings))
        if as_json:
            _echo_json([d.to_dict() for d in diffs])
            return
        for d in diffs:
            _print_diff(d)
        if not diffs:
            click.echo("Nothing to deploy: every process is unchanged.")
        return
    results = ctx.run(lambda s: engine.deploy(s, files, forms_dir, ctx.actor, ctx.now, settings_file=settings,
                                              note=note, new_edition=new_edition))
    for r in results:
        if not r.created:
            click.echo(f"{r.process_key}: unchanged, still version {r.version} {r.label} ({r.status})")
            continue
        approval = (f"; awaiting approval in document_change instance {r.change_instance}"
                    if r.change_instance else "")
        click.echo(f"{r.process_key}: deployed as version {r.version}, revision {r.label}, {r.status} "
                   f"({r.content_hash[:12]}){approval}")


def _print_diff(d) -> None:
    if d.old_version is None:
        click.echo(f"{d.process_key}: a new process (first issue A/0); nothing to compare")
        return
    to = f"version {d.new_version} ({d.new_label})" if d.new_version else "the files given"
    click.echo(f"{d.process_key}: version {d.old_version} ({d.old_label}) → {to}")
    for change in d.changes:
        click.echo(f"  - {change.text}")
    if not d.changes:
        click.echo("  no change a process owner would see (layout or wording of the files only)")
    if d.new_version is None:
        click.echo(f"  running instances: {len(d.affected)} (they stay on their version unless migrated)")
        for a in d.affected:
            blocked = f"; cannot migrate: removes {', '.join(a['blocked_by'])}" if a["blocked_by"] else ""
            click.echo(f"    instance {a['instance']} ({a['business_key'] or '-'}) on version {a['version']}, "
                       f"waiting on {', '.join(a['waiting_on']) or 'nothing'}{blocked}")


@main.command("diff")
@click.argument("process")
@click.argument("old", type=int, required=False)
@click.argument("new", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def diff_command(ctx: Context, process: str, old: int | None, new: int | None, as_json: bool) -> None:
    """What version NEW of PROCESS changes from version OLD, in words (default: newest against the active one)."""
    result = ctx.run(lambda s: engine.diff.versions(s, process, old, new))
    if as_json:
        _echo_json(result.to_dict())
        return
    _print_diff(result)


@main.command()
@click.argument("instance_id", type=int, required=False)
@click.option("--to", "to_version", type=int, required=True, help="The version to move to (the active one).")
@click.option("--process", help="With --from: migrate every running instance of this process on that version.")
@click.option("--from", "from_version", type=int, help="With --process: the version to move instances off.")
@click.option("--reason", default="", help="Why (recorded in each instance's history; required unless --dry-run).")
@click.option("--dry-run", is_flag=True, help="Only show what would be migrated and what blocks it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def migrate(ctx: Context, instance_id: int | None, to_version: int, process: str | None, from_version: int | None,
            reason: str, dry_run: bool, as_json: bool) -> None:
    """Move a running instance (or --process P --from N: all on that version) to version --to.

    Refused, changing nothing, when the new version removes a task an instance waits on or has yet to
    reach. Timer due times, task deadlines, claims and entered data are kept.
    """
    if (instance_id is None) == (process is None or from_version is None):
        raise click.UsageError("give an INSTANCE, or --process P --from N (not both)")
    if instance_id is not None:
        plans = [ctx.run(lambda s: engine.migration.migrate(s, instance_id, to_version, ctx.actor, ctx.now, reason,
                                                            dry_run))]
    else:
        plans = ctx.run(lambda s: engine.migration.migrate_all(s, process, from_version, to_version, ctx.actor,
                                                               ctx.now, reason, dry_run))
    if as_json:
        _echo_json([p.to_dict() for p in plans])
        return
    verb = "would move" if dry_run else "moved"
    for p in plans:
        blocked = f" — blocked: version {p.to_version} removes {', '.join(p.blocked_by)}" if p.blocked_by else ""
        click.echo(f"instance {p.instance_id} ({p.business_key or '-'}): {verb} from version {p.from_version} to "
                   f"{p.to_version}, waiting on {', '.join(p.waiting_on) or 'nothing'}{blocked}")
    if not plans:
        click.echo("No running instance on that version.")


@main.group()
def config() -> None:
    """Engine settings kept in the database: activation (approval|direct), controlled (all|process keys)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Show every setting and its value in force."""
    values = ctx.run(engine.revisions.settings)
    if as_json:
        _echo_json(values)
        return
    for key, value in values.items():
        click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--reason", required=True, help="Why (recorded in the system history).")
@pass_ctx
def config_set(ctx: Context, key: str, value: str, reason: str) -> None:
    """Change a setting; the change is recorded with who, when and why."""
    new = ctx.run(lambda s: engine.revisions.change_setting(s, key, value, ctx.actor, ctx.now, reason))
    click.echo(f"{key}: {', '.join(new) if isinstance(new, list) else new}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _lint_organisation(ctx: Context, org_file: Path | None, folder: Path) -> tuple[engine.Organisation, str]:
    """The organisation lint checks lanes against, and where it came from.

    ``--org FILE`` when given; else the organisation loaded in the database, when there is a database
    (``--db``/QPROC_DB, or an existing default SQLite file) holding one; else ``org.yaml`` beside the
    processes folder, else the shipped one.
    """
    if org_file is None:
        url = ctx.db.engine.url
        is_there = url.get_backend_name() != "sqlite" or Path(url.database or "").is_file()
        if is_there:
            try:
                return engine.audit.run(ctx.db, engine.organisation), f"database {ctx.db.name}"
            except EngineError:
                pass  # no schema or no organisation loaded there yet: lint against the file instead
        org_file = folder.parent / "org.yaml" if (folder.parent / "org.yaml").is_file() else shipped("org.yaml")
    org = ctx.call(lambda: engine.Organisation.from_yaml(org_file.read_text(encoding="utf-8"), str(org_file)))
    return org, str(org_file)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--forms", "forms_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of form files (default: the 'forms' folder beside the processes folder).")
@click.option("--org", "org_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Organisation file to check lanes against (default: the database's, else org.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def lint(ctx: Context, paths: tuple[Path, ...], forms_dir: Path | None, org_file: Path | None, as_json: bool) -> None:
    """Check BPMN/DMN files or folders before deploying them (default: ./processes, else the shipped ones).

    Prints every problem as file:line: message, sorted by file and line, and exits 1 if there is
    any; errors stop a deploy, warnings (diagram, unreachable nodes, DMN gaps) do not.
    """
    files = _deploy_paths(paths)
    folder = files[0].parent
    org, org_source = _lint_organisation(ctx, org_file, folder)
    checked = engine.definitions.check(files, org, forms_dir or folder.parent / "forms", folder / "settings.yaml")
    if as_json:
        _echo_json({"files": checked.files, "organisation": org_source, "clean": not checked.problems,
                    "problems": [p.to_dict() for p in checked.problems]})
    else:
        for problem in checked.problems:
            click.echo(str(problem))
        errors = len(checked.errors)
        summary = (f"{_count(errors, 'error')}, {_count(len(checked.problems) - errors, 'warning')}"
                   if checked.problems else "clean")
        click.echo(f"{_count(len(checked.files), 'file')}, {summary} (organisation: {org_source})")
    if checked.problems:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def definitions(ctx: Context, as_json: bool) -> None:
    """List deployed processes, their versions, revision labels and status (draft, active, obsolete)."""
    rows, revs = ctx.run(lambda s: (engine.store.list_definitions(s), engine.store.all_revisions(s)))
    found = [(r, revs[r.id]) for r in rows]
    if as_json:
        _echo_json([{"process": r.process_key, "version": r.version, "revision": v.label, "status": v.status,
                     "note": v.note, "name": r.name, "hash": r.content_hash, "deployed_at": _iso(r.deployed_at),
                     "deployed_by": r.deployed_by, "activation": v.activation, "activated_at": _iso(v.activated_at),
                     "activated_by": v.activated_by, "document_change": v.change_instance_id,
                     "obsoleted_at": _iso(v.obsoleted_at)} for r, v in found])
        return
    _table("Deployed processes", ["process", "v", "rev", "status", "deployed", "by", "note", "activated", "hash"],
           [[r.process_key, r.version, v.label, v.status, _time(r.deployed_at), r.deployed_by, v.note,
             _activation(v), r.content_hash[:8]] for r, v in found])


def _activation(v) -> str:
    if v.activation is None:
        return f"awaiting document change {v.change_instance_id}" if v.change_instance_id else ""
    via = f" (document change {v.change_instance_id})" if v.change_instance_id else ""
    return f"{v.activation} by {v.activated_by}{via}"


@main.command()
@click.argument("process")
@click.option("--key", "business_key", help="Business key, e.g. the complaint number.")
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON or YAML file of initial data.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="Initial data item (repeatable).")
@click.option("--version", "version", type=int, help="Insist on this version (refused unless it is the active one).")
@pass_ctx
def start(ctx: Context, process: str, business_key: str | None, data_file: Path | None, pairs: tuple[str, ...],
          version: int | None) -> None:
    """Start an instance of PROCESS (its active version)."""
    data = _read_data(data_file, pairs, typed=True)

    def work(session):
        instance = engine.start(session, process, ctx.actor, ctx.now, data=data, business_key=business_key,
                                version=version)
        return instance, engine.store.tasks_of_instance(session, instance.id, engine.ACTIVE_TASK)

    instance, open_tasks = ctx.run(work)
    click.echo(f"Started instance {instance.id} of {process} (version {instance.definition.version}).")
    for task in open_tasks:
        click.echo(f"  task {task.id}: {task.title} → {task.department}")


@main.command()
@click.option("--department", help="Only this department's tasks (one you belong to).")
@click.option("--mine", is_flag=True, help="Only tasks you have claimed or that were escalated to you.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def tasks(ctx: Context, department: str | None, mine: bool, as_json: bool) -> None:
    """Your inbox: open and claimed tasks of your departments and tasks escalated to you, earliest due first.

    Overdue tasks are marked with how late they are; escalated ones say why they are yours.
    """
    actor, now = ctx.actor, ctx.now

    def work(session):
        departments = engine.visible_departments(session, actor, department)
        return engine.store.inbox(session, departments, engine.ACTIVE_TASK, assignee=actor if mine else None,
                                  escalated_to=None if department else actor)

    rows = ctx.run(work)
    if as_json:
        _echo_json([_task_json(t, now) for t in rows])
        return
    if not rows:
        click.echo(f"No open tasks for {actor}" + (f" in {department}." if department else "."))
        return
    _table(f"Tasks for {actor}", ["id", "task", "department", "instance", "key", "status", "assignee", "due",
                                  "escalated"],
           [[t.id, t.title, t.department + (" (head)" if t.role else ""), t.instance_id, t.instance.business_key,
             t.status, t.assignee, _due_cell(t, now), t.escalation_reason or ""] for t in rows])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def overdue(ctx: Context, as_json: bool) -> None:
    """Every overdue task: how late it is and who answers for it now, most overdue first."""
    now = ctx.now
    rows = ctx.run(lambda s: engine.reports.overdue(s, now, engine.organisation(s), engine.ACTIVE_TASK))
    if as_json:
        _echo_json([{**_task_json(r.task, now), "late": r.late, "owner": r.owner} for r in rows])
        return
    _table(f"Overdue at {_time(now)} UTC", ["id", "task", "instance", "key", "due", "late", "owner", "escalated"],
           [[r.task.id, r.task.title, r.task.instance_id, r.task.instance.business_key, _time(r.task.due_at),
             r.late, r.owner, r.task.escalation_reason or ""] for r in rows])


@main.command("task")
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Label language.")
@pass_ctx
def show_task(ctx: Context, task_id: int, as_json: bool, lang: str) -> None:
    """Show a task: its instance, the data so far, and the form to fill.

    With --as, only a member of the task's department may read it.
    """
    view = ctx.run(lambda s: engine.describe_task(s, task_id, ctx.actor_name))
    task, form = view.task, view.form
    if as_json:
        _echo_json({**_task_json(task), "context": view.data, "form_schema": form.json_schema()})
        return
    click.echo(f"Task {task.id}: {task.title}  [{task.status}]")
    click.echo(f"Instance {task.instance_id} ({task.instance.process_key}"
               + (f", key {task.instance.business_key}" if task.instance.business_key else "")
               + f", revision {task.instance.revision})")
    click.echo(f"Department: {task.department}" + (" — needs the head" if task.role else "")
               + (f"; claimed by {task.assignee}" if task.assignee else ""))
    if view.rules.signature:
        click.echo(f"Electronic signature: {view.rules.signature} (your password is asked when you complete it)")
    if view.rules.not_same_as:
        click.echo(f"Separation of duties: not by whoever did {', '.join(view.rules.not_same_as)} in this instance")
    if view.data:
        _table("Data so far", ["field", "value"], [[k, v] for k, v in view.data.items()])
    rows = []
    for f in form.fields:
        detail = ", ".join(c.value for c in f.choices) if f.choices else f.type
        rows.append([f.name, f.label.get(lang) or f.label.get("en", ""), "yes" if f.required else "", detail,
                     f.help.get(lang) or f.help.get("en", "")])
    _table(f"Form {form.key}: {form.title.get(lang) or form.title.get('en', '')}",
           ["field", "label", "required", "type / choices", "help"], rows)
    click.echo(f"Complete it with: qproc complete {task.id} --revision {task.instance.revision} --set FIELD=VALUE ...")


@main.command()
@click.argument("task_id", type=int)
@pass_ctx
def claim(ctx: Context, task_id: int) -> None:
    """Claim a task of your department."""
    task = ctx.run(lambda s: engine.claim(s, task_id, ctx.actor, ctx.now))
    click.echo(f"Task {task.id} '{task.title}' is claimed by {task.assignee}.")


@main.command()
@click.argument("task_id", type=int)
@pass_ctx
def unclaim(ctx: Context, task_id: int) -> None:
    """Put a claimed task back into its department's inbox."""
    task = ctx.run(lambda s: engine.unclaim(s, task_id, ctx.actor, ctx.now))
    click.echo(f"Task {task.id} '{task.title}' is back in the {task.department} inbox.")


def _password(password_file: Path | None, prompt: str, env: str = "QPROC_PASSWORD", confirm: bool = False) -> str:
    """A password from --password-file, else the environment variable, else a hidden prompt."""
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").rstrip("\r\n")
    if os.environ.get(env):
        return os.environ[env]
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


PASSWORD_FILE = click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                             help="Read the password from this file (else QPROC_PASSWORD, else a hidden prompt).")


def _signs(ctx: Context, task_id: int, data: dict[str, Any]) -> bool:
    """Whether completing the task asks for a signature: it is signed, and neither the actor's rights nor the
    form would refuse the completion first (so nobody types a password for a completion that cannot happen)."""
    def check(session) -> bool:
        if not engine.rules_of(engine.store.get_task(session, task_id)).signature:
            return False  # most tasks: no need to load the workflow for the checks below
        view = engine.describe_task(session, task_id, ctx.actor, ctx.now)
        if view.blocked:
            return False
        view.form.validate(data)
        return True
    try:
        return ctx.db.run(check)
    except EngineError:
        return False  # the completion itself refuses, with the same message (and records it where it must)


@main.command()
@click.argument("task_id", type=int)
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON or YAML file with the form's fields.")
@click.option("--set", "pairs", multiple=True, metavar="FIELD=VALUE", help="A form field (repeatable).")
@PASSWORD_FILE
@click.option("--revision", "expected_revision", type=int,
              help="Refuse if the instance changed since you read it at this revision (qproc task / show print it).")
@pass_ctx
def complete(ctx: Context, task_id: int, data_file: Path | None, pairs: tuple[str, ...],
             password_file: Path | None, expected_revision: int | None) -> None:
    """Submit a task's form and move the procedure on.

    A task that needs an electronic signature asks for your password (hidden), or reads it from
    --password-file or QPROC_PASSWORD.
    """
    data = _read_data(data_file, pairs, typed=False)
    password = _password(password_file, f"Password of {ctx.actor} to sign") if _signs(ctx, task_id, data) else None

    def work(session):
        task = engine.complete(session, task_id, ctx.actor, ctx.now, data, password=password,
                               expected_revision=expected_revision)
        return task, engine.store.tasks_of_instance(session, task.instance_id, engine.ACTIVE_TASK)

    task, open_tasks = ctx.run(work)
    click.echo(f"Completed task {task.id} '{task.title}'.")
    if task.instance.status != "running":
        click.echo(f"Instance {task.instance_id} is {task.instance.status}.")
    for t in open_tasks:
        click.echo(f"  next: task {t.id}: {t.title} → {t.department}")


@main.command()
@click.argument("task_id", type=int)
@click.option("--set", "pairs", multiple=True, required=True, metavar="FIELD=VALUE", help="A corrected field.")
@click.option("--reason", required=True, help="Why the data is corrected (recorded).")
@pass_ctx
def correct(ctx: Context, task_id: int, pairs: tuple[str, ...], reason: str) -> None:
    """Correct a completed task's submitted data; the old and new values and the reason are recorded."""
    values = _read_data(None, pairs, typed=False)
    task = ctx.run(lambda s: engine.correct(s, task_id, ctx.actor, ctx.now, values, reason))
    click.echo(f"Corrected task {task.id} '{task.title}': {', '.join(values)} (history keeps the old values).")


@main.command()
@click.argument("instance_id", type=int)
@click.option("--reason", required=True, help="Why the instance is stopped (recorded).")
@click.option("--revision", "expected_revision", type=int,
              help="Refuse if the instance changed since you read it at this revision (qproc task / show print it).")
@pass_ctx
def cancel(ctx: Context, instance_id: int, reason: str, expected_revision: int | None) -> None:
    """Cancel a running instance and withdraw its open tasks."""
    ctx.run(lambda s: engine.cancel(s, instance_id, ctx.actor, ctx.now, reason, expected_revision=expected_revision))
    click.echo(f"Instance {instance_id} is cancelled.")


@main.command()
@click.option("--status", type=click.Choice([s.value for s in engine.InstanceStatus]), help="Only this status.")
@click.option("--process", help="Only instances of this process.")
@click.option("--version", type=int, help="With --process: only instances running on this version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def instances(ctx: Context, status: str | None, process: str | None, version: int | None, as_json: bool) -> None:
    """List instances, newest first, with the version each runs on."""
    if version is not None and process is None:
        raise click.UsageError("--version needs --process")
    rows = ctx.run(lambda s: engine.store.list_instances(s, status, process_key=process, version=version))
    if as_json:
        _echo_json([_instance_json(i) for i in rows])
        return
    _table("Instances", ["id", "process", "v", "key", "status", "started by", "started", "ended"],
           [[i.id, i.process_key, i.definition.version, i.business_key, i.status, i.started_by,
             _time(i.started_at), _time(i.ended_at)] for i in rows])


@main.command()
@click.argument("instance_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def show(ctx: Context, instance_id: int, as_json: bool) -> None:
    """Show an instance: status, open tasks and current data."""
    def work(session):
        instance = engine.store.get_instance(session, instance_id)
        return instance, engine.store.tasks_of_instance(session, instance_id), engine.instance_data(instance)

    instance, all_tasks, data = ctx.run(work)
    if as_json:
        _echo_json({**_instance_json(instance), "tasks": [_task_json(t) for t in all_tasks], "data": data})
        return
    click.echo(f"Instance {instance.id}: {instance.definition.name} v{instance.definition.version}"
               + (f", key {instance.business_key}" if instance.business_key else "")
               + f"  [{instance.status}, revision {instance.revision}]")
    click.echo(f"Started by {instance.started_by} at {_time(instance.started_at)}"
               + (f"; ended {_time(instance.ended_at)}" if instance.ended_at else ""))
    _table("Tasks", ["id", "task", "department", "status", "assignee / by", "created", "completed"],
           [[t.id, t.title, t.department, t.status, t.completed_by or t.assignee, _time(t.created_at),
             _time(t.completed_at)] for t in all_tasks])
    _table("Data", ["field", "value"], [[k, v] for k, v in data.items()])


@main.command()
@click.argument("instance_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def history(ctx: Context, instance_id: int, as_json: bool) -> None:
    """The full history of an instance: every step, who, when, with which data."""
    def work(session):
        engine.store.get_instance(session, instance_id)
        return engine.history(session, instance_id)

    events = ctx.run(work)
    if as_json:
        _echo_json([_event_json(e) for e in events])
        return
    print_history(instance_id, events)


@main.group()
def user() -> None:
    """Users: their password (web sign-in and electronic signatures)."""


@user.command("set-password")
@PASSWORD_FILE
@click.option("--current-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Your current password, to change it (else QPROC_PASSWORD, else a hidden prompt).")
@pass_ctx
def set_password(ctx: Context, password_file: Path | None, current_password_file: Path | None) -> None:
    """Set your password, for signing in to the web tasklist and for electronic signatures
    (to change it, give the current one too).

    The new password comes from --password-file, else QPROC_NEW_PASSWORD, else a hidden prompt.
    """
    actor = ctx.actor
    has_one = ctx.run(lambda s: engine.store.get_credential(s, actor) is not None)
    current = _password(current_password_file, "Current password") if has_one else None
    new = _password(password_file, "New password", env="QPROC_NEW_PASSWORD", confirm=True)
    ctx.run(lambda s: engine.credentials.set_password(s, engine.organisation(s), actor, new, actor, ctx.now, current))
    click.echo(f"Signature password of {actor} is set.")


@main.group()
def audit() -> None:
    """For auditors: verify the history, replay instances, export evidence."""


@audit.command("verify")
@click.option("--instance", "instance_id", type=int, help="Only this instance's history.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def audit_verify(ctx: Context, instance_id: int | None, as_json: bool) -> None:
    """Check the hash chains: a modified, deleted, inserted or reordered event is named. Exit 1 if any."""
    result = ctx.run(lambda s: engine.audit.verify(s, instance_id))
    if as_json:
        _echo_json({"ok": result.ok, "chains": result.chains, "events": result.events, "anchor": result.anchor,
                    "problems": [str(p) for p in result.problems]})
    else:
        for problem in result.problems:
            click.echo(f"BROKEN {problem}")
        verdict = "intact" if result.ok else f"{len(result.problems)} broken"
        click.echo(f"Verified {result.chains} chains, {result.events} events: {verdict}.")
        click.echo(f"Anchor (digest of every chain head): {result.anchor}")
    if not result.ok:
        sys.exit(1)


@audit.command("replay")
@click.argument("instance_id", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every instance.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def audit_replay(ctx: Context, instance_id: int | None, replay_all: bool, as_json: bool) -> None:
    """Re-execute instances from their pinned version and recorded inputs: MATCH, or the first divergence."""
    if (instance_id is None) == (not replay_all):
        raise click.UsageError("give an INSTANCE_ID or --all (not both)")
    if instance_id is not None:
        results = [ctx.run(lambda s: engine.replay.replay(s, instance_id))]
    else:
        with Progress(TextColumn("Replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), disable=as_json) as bar:
            job = bar.add_task("replay", total=None)
            results = ctx.run(lambda s: engine.replay.replay_all(
                s, lambda done, total: bar.update(job, completed=done, total=total)))
    if as_json:
        _echo_json([{"instance": r.instance_id, "process": r.process_key, "business_key": r.business_key,
                     "match": r.match, "divergence": r.divergence, "events": r.events} for r in results])
    else:
        for r in results:
            if instance_id is not None or not r.match:
                key = f" ({r.business_key})" if r.business_key else ""
                click.echo(f"Instance {r.instance_id}{key}: " + ("MATCH" if r.match else f"DIVERGES: {r.divergence}"))
        if replay_all:
            diverging = sum(not r.match for r in results)
            summary = Table(title="Replay summary", title_justify="left")
            for column in ("instances", "MATCH", "diverge", "events checked"):
                summary.add_column(column)
            summary.add_row(str(len(results)), str(len(results) - diverging), str(diverging),
                            str(sum(r.events for r in results)))
            console.print(summary)
    if any(not r.match for r in results):
        sys.exit(1)


@audit.command("export")
@click.argument("instance_id", type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the evidence pack into (created if missing).")
@pass_ctx
def audit_export(ctx: Context, instance_id: int, out_dir: Path) -> None:
    """Write an evidence pack: pinned BPMN and forms, events, forms, signatures, verify and replay results."""
    actor = ctx.actor_name or engine.SYSTEM_ACTOR
    pack = ctx.run(lambda s: engine.evidence.collect(s, instance_id, actor, ctx.now))
    try:
        written = engine.evidence.write(pack, out_dir)
    except EngineError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Evidence pack of instance {instance_id} written to {out_dir}: {len(written)} files; "
               f"open {written[1]}")
    click.echo(f"  history: {'intact' if pack['verify']['ok'] else 'BROKEN'}; replay: "
               f"{'MATCH' if pack['replay']['match'] else 'DIVERGES'}; signatures: {len(pack['signatures'])}")


@main.group()
def calendar() -> None:
    """The business calendar: working days and hours, holidays, make-up working days."""


@calendar.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def calendar_load(ctx: Context, file: Path) -> None:
    """Load a business calendar file (calendar.yaml); it is in force from now on."""
    actor = ctx.actor_name or engine.SYSTEM_ACTOR
    loaded = ctx.run(lambda s: engine.load_calendar(s, file, actor, ctx.now))
    years = sorted({d.year for d in loaded.holidays})
    click.echo(f"Loaded calendar '{loaded.name}' ({loaded.zone_name}): {len(loaded.holidays)} holidays and "
               f"{len(loaded.workdays)} make-up working days in {', '.join(map(str, years)) or 'no year'}.")


@calendar.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def calendar_show(ctx: Context, as_json: bool) -> None:
    """Show the calendar in force."""
    current = ctx.run(engine.business_calendar)
    if as_json:
        _echo_json(current.to_dict())
        return
    content = current.to_dict()
    click.echo(f"{current.name} ({current.zone_name}): {', '.join(content['working_days'])}, "
               f"{', '.join(content['working_hours'])}")
    _table("Days off and make-up working days", ["date", "kind", "name"],
           sorted([[d["date"], "holiday", d["name"]] for d in content["holidays"]]
                  + [[d["date"], "working day", d["name"]] for d in content["workdays"]]))


@calendar.command("deadline")
@click.argument("start")
@click.argument("duration")
@click.option("--working", is_flag=True, help="Count working time (working days, office hours).")
@pass_ctx
def calendar_deadline(ctx: Context, start: str, duration: str, working: bool) -> None:
    """When DURATION (ISO 8601, e.g. P2D, PT16H) after START falls, in calendar or working time."""
    moment = parse_time(start, "START")

    def work(session):
        calendar_in_force = engine.business_calendar(session)
        try:
            return calendar_in_force, calendar_in_force.add(moment, duration, "working" if working else "calendar")
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="DURATION") from None

    calendar_in_force, due = ctx.run(work)
    click.echo(due.astimezone(calendar_in_force.zone).isoformat())


@main.group()
def timers() -> None:
    """Timers and deadlines: fire what is due, list what is scheduled."""


@timers.command("fire")
@click.option("--now", "now_text", help="Fire what is due before this ISO 8601 time (default: the global --now, "
                                        "else the wall clock).")
@click.option("--batch", default=engine.timers.BATCH, show_default=True, help="Instances claimed per transaction.")
@pass_ctx
def timers_fire(ctx: Context, now_text: str | None, batch: int) -> None:
    """One pass: fire due timers, start scheduled instances, escalate overdue tasks; then exit (for cron and tests)."""
    now = parse_time(now_text) if now_text else ctx.now
    try:
        firings = engine.timers.fire_due(ctx.db, now, batch)
    except EngineError as err:
        raise click.ClickException(str(err)) from None
    for firing in firings:
        click.echo(firing.detail)
    click.echo(f"{len(firings)} done at {now.isoformat()}.")


@timers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def timers_list(ctx: Context, as_json: bool) -> None:
    """Timer start events (schedules) and running instances with work due, next first."""
    def work(session):
        return engine.store.list_schedules(session), engine.store.list_due_instances(session)

    schedules, instances = ctx.run(work)
    if as_json:
        _echo_json({"schedules": [{"process": s.process_key, "timer": s.event, "expression": s.expression,
                                   "next_due_at": _iso(s.next_due_at), "occurrence": s.occurrence} for s in schedules],
                    "instances": [{"id": i.id, "process": i.process_key, "business_key": i.business_key,
                                   "timer_due_at": _iso(i.timer_due_at), "next_due_at": _iso(i.next_due_at)}
                                  for i in instances]})
        return
    _table("Schedules (timer start events)", ["process", "timer", "expression", "next"],
           [[s.process_key, s.event, s.expression, _time(s.next_due_at)] for s in schedules])
    _table("Instances with work due", ["id", "process", "key", "next timer", "next due"],
           [[i.id, i.process_key, i.business_key, _time(i.timer_due_at), _time(i.next_due_at)] for i in instances])


@main.command()
@click.option("--poll", default=30.0, show_default=True, help="Seconds between passes.")
@click.option("--batch", default=engine.timers.BATCH, show_default=True, help="Instances claimed per transaction.")
@pass_ctx
def worker(ctx: Context, poll: float, batch: int) -> None:
    """Run until SIGINT/SIGTERM: every POLL seconds fire due timers, start scheduled instances, escalate.

    Logs each thing it does on stderr. Stopping finishes the transaction under way, then exits.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    stop = threading.Event()
    engine.worker.stop_on_signals(stop)
    engine.worker.run(ctx.db, ctx.clock, stop, poll, batch)


@main.command()
@click.option("--months", type=click.IntRange(1, 36),
              help="Instead of the three sample complaints, generate this many months of varied history up to now.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed of the generated history.")
@click.option("--per-week", type=click.FloatRange(0.5, 50), default=4.0, show_default=True,
              help="Complaints a week in the generated history (on average).")
@pass_ctx
def demo(ctx: Context, months: int | None, seed: int, per_week: float) -> None:
    """Set up a database with the shipped organisation and procedures and run three sample complaints.

    With --months N, fill an empty database with N months of complaint handling instead, every step run
    by the engine at its simulated moment, ending now (or at --now): material for qproc report and qproc kpi.
    """
    if months:
        _generate(ctx, months, seed, per_week)
        return
    try:
        click.echo(engine.demo.prepare(ctx.db, shipped("org.yaml"), shipped("calendar.yaml"), shipped("processes"),
                                       ctx.now))
        instance_ids = [engine.demo.run_scenario(ctx.db, scenario, ctx.now) for scenario in engine.demo.SCENARIOS]
    except EngineError as err:
        raise click.ClickException(str(err)) from None
    for scenario, instance_id in zip(engine.demo.SCENARIOS, instance_ids):
        events = ctx.run(lambda s, i=instance_id: engine.history(s, i))
        click.echo(f"\n{scenario.title}: instance {instance_id}")
        print_history(instance_id, events)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve the web tasklist and the REST API (/api, OpenAPI at /api/openapi.json) over this database.

    On a database with no organisation it first loads the sample organisation and deploys the
    shipped procedures; sample users get the demo password, printed here. The web application
    (package ``web``) is started by name, so this command shares no code with it.
    """
    import uvicorn

    try:
        for line in engine.bootstrap.first_run(ctx.db, ctx.now):
            click.echo(line)
    except EngineError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Serving the inbox at http://{host}:{port}/ (Ctrl+C to stop).")
    os.environ["QPROC_DB"] = ctx.db.url
    uvicorn.run("web.app:create_app", factory=True, host=host, port=port, log_level="warning")


def _generate(ctx: Context, months: int, seed: int, per_week: float) -> None:
    began = time.monotonic()
    try:
        summary = engine.sample_history.generate(ctx.db, months, ctx.now, shipped("org.yaml"), shipped("calendar.yaml"),
                                                 shipped("processes"), seed=seed, per_week=per_week)
    except EngineError as err:
        raise click.ClickException(str(err)) from None
    last = summary.end.astimezone(ZoneInfo(DEFAULT_TZ))
    previous = f"{last.year - (last.month == 1)}-{(last.month - 2) % 12 + 1:02d}"
    click.echo(f"Generated {summary.complaints} complaints from {_time(summary.start)} to {_time(summary.end)} "
               f"({summary.commands} engine commands, {time.monotonic() - began:.1f} s); "
               f"{summary.open_complaints} still open.")
    click.echo(f"Next: qproc report monthly --month {previous}   or   qproc kpi")


# --- reports ---------------------------------------------------------------------------------

DEFAULT_TZ = "Asia/Shanghai"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"'{name}' is not a time zone name such as Asia/Shanghai", param_hint="--tz") from None


def _report_options(command):
    command = click.option("--tz", envvar="QPROC_TZ", default=DEFAULT_TZ, show_default=True,
                           help="Time zone that months and days are counted in.")(command)
    command = click.option("--json", "as_json", is_flag=True,
                           help="Print the figures as JSON (the page is then written only with --out).")(command)
    command = click.option("--link", metavar="URL",
                           help="Make instance numbers links: URL with {id}, e.g. http://host:8000/instances/{id}.")(command)
    command = click.option("--pdf", is_flag=True,
                           help="Also print the page to PDF (needs Chromium or Google Chrome).")(command)
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                        help="Folder to write the HTML page into (default: the current folder).")(command)


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _print_pdf(page: Path, html: str) -> Path:
    """Print ``html`` to a PDF beside ``page`` with a headless Chromium from the PATH (print styles apply)."""
    browser = next((found for found in map(shutil.which, BROWSERS) if found), None)
    if browser is None:
        raise click.ClickException(f"--pdf needs one of {', '.join(BROWSERS)} on the PATH "
                                   f"(e.g. apt-get install chromium); {page} was written")
    pdf = page.with_suffix(".pdf")
    printable = page.with_suffix(".print.html")
    printable.write_text(html, encoding="utf-8")
    # Chromium refuses to run as root without --no-sandbox; the page is our own file.
    sandbox = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    try:
        result = subprocess.run([browser, "--headless", "--disable-gpu", *sandbox, "--no-pdf-header-footer",
                                 f"--print-to-pdf={pdf}", printable.resolve().as_uri()], capture_output=True,
                                timeout=180)
    finally:
        printable.unlink()
    if result.returncode != 0 or not pdf.exists():
        raise click.ClickException(f"{browser} could not print {page} to PDF (exit {result.returncode})")
    return pdf


def _deliver(report, out: Path | None, as_json: bool, pdf: bool, link: str | None, name: str) -> None:
    """Print the report's JSON and/or write its page (and its PDF), as the options ask."""
    if as_json:
        _echo_json(engine.reports.to_dict(report))
    if out is None and as_json and not pdf:
        return
    from engine import report_page  # matplotlib loads only for the commands that draw

    folder = out or Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(report_page.render(report, link=link), encoding="utf-8")
    click.echo(f"Wrote {path} ({path.stat().st_size // 1024} KB): open it in a browser.", err=as_json)
    if pdf:
        click.echo(f"Wrote {_print_pdf(path, report_page.render(report, unfolded=True, link=link))}.", err=as_json)


@main.group()
def report() -> None:
    """Reports the procedures ask for: the monthly complaint summary and the yearly management review pack."""


@report.command("monthly")
@click.option("--month", "month_text", required=True, metavar="YYYY-MM", help="The month, e.g. 2026-11.")
@_report_options
@pass_ctx
def report_monthly(ctx: Context, month_text: str, out: Path | None, pdf: bool, link: str | None, as_json: bool,
                   tz: str) -> None:
    """The monthly complaint summary: every KPI for the month against its target, with the trend up to it."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month_text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise click.BadParameter(f"'{month_text}' is not a month written YYYY-MM", param_hint="--month")
    year, number = int(match.group(1)), int(match.group(2))
    zone = _zone(tz)
    built = ctx.run(lambda s: engine.reports.monthly(s, year, number, zone, ctx.now))
    _deliver(built, out, as_json, pdf, link, f"complaints-monthly-{month_text}.html")


@report.command("review")
@click.option("--year", "year_number", type=click.IntRange(2000, 2999), required=True, help="The year, e.g. 2026.")
@_report_options
@pass_ctx
def report_review(ctx: Context, year_number: int, out: Path | None, pdf: bool, link: str | None, as_json: bool,
                  tz: str) -> None:
    """The yearly complaint report for management review: every KPI for the year, month by month."""
    zone = _zone(tz)
    built = ctx.run(lambda s: engine.reports.review(s, year_number, zone, ctx.now))
    _deliver(built, out, as_json, pdf, link, f"complaints-review-{year_number}.html")


@main.command()
@click.option("--tz", envvar="QPROC_TZ", default=DEFAULT_TZ, show_default=True,
              help="Time zone that months and days are counted in.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def kpi(ctx: Context, tz: str, as_json: bool) -> None:
    """The current figures: this month so far against the targets, and what is overdue now."""
    zone = _zone(tz)
    built = ctx.run(lambda s: engine.reports.current(s, zone, ctx.now))
    if as_json:
        _echo_json(engine.reports.to_dict(built))
        return
    table = Table(title=f"{built.title} (as of {_time(built.as_of.astimezone(zone))} {tz})", title_justify="left")
    for column in ("KPI", "period", "figure", "target", "status"):
        table.add_column(column)
    for f in built.figures:
        status = {True: "[green]met[/green]", False: "[bold red]missed[/bold red]"}.get(f.met, "")
        title = next(d["title"] for d in built.definitions if d["key"] == f.key)
        table.add_row(title, f.period, _kpi_figure(f), f.target_text, status)
    console.print(table)
    click.echo("Details and the items behind each figure: qproc report monthly --month YYYY-MM")


def _kpi_figure(f) -> str:
    if f.value is None:
        return "no data"
    if f.unit == "share":
        return f"{f.value:.1%} of {f.stats['count']}"
    if f.unit == "score":
        return f"{f.value:.2f} ({f.stats['responses']} answers, response rate " + (
            f"{f.stats['response_rate']:.0%})" if f.stats["response_rate"] is not None else "–)")
    return str(f.value)


if __name__ == "__main__":
    main()

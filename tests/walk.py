"""Walk a shipped procedure as its departments would: each open task done by someone of the department
whose inbox holds it (its head when the task needs the head), one command per step, the clock moving on.

Used by the procedure tests (CAPA, customer complaint, document change, customer satisfaction) to assert
the order of inboxes, the signatures and the outcome of every path.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from conftest import ROOT, T0
from engine import audit, demo, runtime, store, timers

# Who does a department's (non-head) tasks in the walks: a member other than the head.
MEMBER = {"sales": "li.zhou", "service": "yan.sun", "quality": "mei.wang", "engineering": "bin.huang",
          "rnd": "yang.song", "mgmt_rep": "hong.han", "gm": "xiaoming.deng", "tech_support": "yu.guo",
          "tech_mgmt": "jing.zheng", "finance": "ning.peng"}
STEP = timedelta(minutes=30)


@dataclass
class Walk:
    """What a walk saw: the instance, and each task in the order the inboxes received it."""

    instance_id: int
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (task, department, who did it)

    @property
    def inboxes(self) -> list[tuple[str, str]]:
        """(task, department) in the order the tasks appeared."""
        return [(task, department) for task, department, _ in self.steps]

    @property
    def tasks(self) -> list[str]:
        """The tasks in the order they appeared."""
        return [task for task, _, _ in self.steps]


def deploy_shipped(db, *names: str, settings_file=None) -> None:
    """Deploy processes/<name>.bpmn for each name (a caller with the processes it calls) with the shipped forms
    and settings (or ``settings_file``)."""
    processes = ROOT / "processes"
    db.run(lambda s: runtime.deploy(s, [processes / f"{name}.bpmn" for name in names], ROOT / "forms", "qiang.li",
                                    T0, settings_file=settings_file or processes / "settings.yaml"))


def edited_settings(folder: Path, edit) -> Path:
    """A copy of processes/settings.yaml in ``folder``, changed by ``edit`` (called with the parsed mapping)."""
    settings = yaml.safe_load((ROOT / "processes" / "settings.yaml").read_text(encoding="utf-8"))
    edit(settings)
    path = folder / "settings.yaml"
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


def walk(db, process: str, starter: str, answers: dict[str, list[dict]], data: dict | None = None,
         actors: dict[str, str] | None = None, until: str | None = None, start: datetime = T0) -> Walk:
    """Start ``process`` as ``starter`` (with start ``data``) and complete its tasks until it ends or ``until`` is open.

    ``answers`` gives each task's submissions in order (the last one repeats); ``actors`` names who
    does a task instead of the department's usual member or head. Signed tasks get the signer's
    demo password. While the instance waits on a timer with no task open, the worker fires it when due.
    """
    queues = {name: list(values) for name, values in answers.items()}
    clock = start
    instance_id = db.run(lambda s: runtime.start(s, process, starter, clock, data=data).id)
    seen = Walk(instance_id)
    for _ in range(80):
        clock += STEP
        tasks = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        if any(task.name == until for task in tasks):
            return seen
        if not tasks:
            waiting = db.run(lambda s: store.get_instance(s, instance_id))
            if waiting.status != "running" or waiting.next_due_at is None:
                return seen
            clock = max(clock, waiting.next_due_at + timedelta(minutes=1))
            timers.fire_due(db, clock)
            continue
        task = tasks[0]
        actor = (actors or {}).get(task.name) or doer(db, task)
        assert task.id in [t.id for t in inbox(db, actor)], f"{task.name} is not in {actor}'s inbox"
        queue = queues[task.name]
        submitted = queue.pop(0) if len(queue) > 1 else queue[0]
        complete(db, task.id, actor, clock, submitted)
        seen.steps.append((task.name, task.department, actor))
    raise AssertionError(f"{process} did not finish: {seen.inboxes}")


def inbox(db, user: str) -> list:
    """The open and claimed tasks in ``user``'s inbox: their departments' and those escalated to them."""
    return db.run(lambda s: store.inbox(s, runtime.visible_departments(s, user, None), runtime.ACTIVE_TASK,
                                        escalated_to=user))


def doer(db, task) -> str:
    """The usual person for a task: its department's head when the task needs the head, else MEMBER."""
    org = db.run(runtime.organisation)
    return org.departments[task.department].head if task.role else MEMBER[task.department]


def complete(db, task_id: int, actor: str, now: datetime, data: dict):
    """Complete a task as ``actor``, with their demo signing password when the task is signed."""
    def work(session):
        task = store.get_task(session, task_id)
        password = demo.signing_password(session, actor, now) if runtime.rules_of(task).signature else None
        return runtime.complete(session, task_id, actor, now, data, password=password)
    return db.run(work)


def open_tasks(db, instance_id: int) -> list:
    """The instance's open or claimed tasks."""
    return db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))


def outcome(db, instance_id: int) -> tuple[str, dict]:
    """The instance's status and its data (final data once completed)."""
    return db.run(lambda s: (store.get_instance(s, instance_id).status,
                             runtime.instance_data(store.get_instance(s, instance_id))))


def signatures(db, instance_id: int) -> list[tuple[str, str, str]]:
    """(task, signer, meaning) of every signature in the instance's history, in order."""
    return [(e.data["task"], e.data["signer"], e.data["meaning"]) for e in history(db, instance_id)
            if e.kind == "task_signed"]


def history(db, instance_id: int) -> list:
    """The instance's events."""
    return db.run(lambda s: audit.history(s, instance_id))


def ended_at(db, instance_id: int) -> list[str]:
    """The end events the instance reached (from the recorded automatic steps)."""
    return [e.data["step"] for e in history(db, instance_id)
            if e.kind == "step_completed" and e.data.get("type") == "EndEvent"]

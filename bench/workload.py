"""Driving both engines through whole instances, timing every task completion.

qproc is driven exactly as the CLI drives it: ``engine.start`` and ``engine.complete`` each inside
one ``Database.run`` (one durable transaction per command), then the open tasks read back as the
CLI prints them. The naive engine gets the same answers, already coerced to the form's types
(it has no forms), and the same initial data (the process settings qproc injects).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import engine
from engine import Database, runtime, store
from engine import demo
from engine.demo import SCENARIOS

from . import process

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
COMPLAINT = "customer_complaint"
# The complaint and the CAPA procedure it calls.
COMPLAINT_FILES = (ROOT / "processes" / "customer_complaint.bpmn", ROOT / "processes" / "capa.bpmn")
# The complaint's longest common path: our responsibility, CAPA effective the first time (18 user tasks).
COMPLAINT_ANSWERS = next(s for s in SCENARIOS if s.key == "DEMO-2").answers
ADMIN = "qiang.li"

Answer = Callable[[str, str, int], dict]  # (task's BPMN id, its form, how often it was asked before) -> answer


def sequential_answer(_name: str, form: str, _round: int) -> dict:
    """The answer to a step of the sequential benchmark process."""
    return process.ANSWERS[form]


def complaint_answer(name: str, _form: str, round_: int) -> dict:
    """The demo's answer to a complaint task (the ``round_``-th time it is asked)."""
    answers = COMPLAINT_ANSWERS[name]
    return answers[min(round_, len(answers) - 1)]


@dataclass
class Timings:
    """What one batch of instances cost."""

    instances: int = 0
    completions: int = 0
    seconds: float = 0.0                                      # wall time of the whole batch, starts included
    cpu_seconds: float = 0.0                                  # CPU time this process spent on the batch
    latencies: list[float] = field(default_factory=list)      # per completion: the whole transaction
    engine_times: list[float] = field(default_factory=list)   # per completion: the work before the commit
    state_bytes: list[int] = field(default_factory=list)      # per instance: the largest hot row it had
    instance_ids: list[int] = field(default_factory=list)


class Driver:
    """A database prepared for the benchmark, and who acts for each department."""

    def __init__(self, db: Database):
        self.db = db
        org = db.run(runtime.organisation)
        self.actors: dict[tuple[str, str | None], str] = {}
        for key, dept in org.departments.items():
            self.actors[(key, None)] = next((m for m in dept.members if m != dept.head), dept.head)
            self.actors[(key, "head")] = dept.head

    @classmethod
    def prepare(cls, db: Database, steps: tuple[int, ...], scratch: Path) -> "Driver":
        """Create the schema (the migrations), load the organisation and calendar, deploy the benchmark processes
        and the complaint."""
        db.upgrade()
        processes = ROOT / "processes"

        def work(session):
            runtime.load_organisation(session, ROOT / "org.yaml", runtime.SYSTEM_ACTOR, T0)
            runtime.load_calendar(session, ROOT / "calendar.yaml", runtime.SYSTEM_ACTOR, T0)
            for n in steps:
                engine.deploy(session, [process.write_process(n, scratch)], process.FORMS_DIR, ADMIN, T0)
            engine.deploy(session, list(COMPLAINT_FILES), ROOT / "forms", ADMIN, T0,
                          settings_file=processes / "settings.yaml")
        db.run(work)
        return cls(db)

    def start(self, process_key: str, business_key: str, at: datetime) -> tuple[int, list]:
        """Start an instance as a sales clerk, as ``qproc start`` does; its id and open tasks."""
        def work(session):
            instance = engine.start(session, process_key, self.actors[("sales", None)], at, business_key=business_key)
            return instance.id, store.tasks_of_instance(session, instance.id, engine.ACTIVE_TASK)
        return self.db.run(work)

    def complete(self, task, data: dict, at: datetime) -> tuple[list, float, int]:
        """Complete a task as ``qproc complete`` does; the open tasks after it, engine seconds, state bytes."""
        actor = self.actors[(task.department, task.role)]
        measured = {}

        def work(session):
            began = time.perf_counter()
            # Signature tasks take the signer's password, as the CLI prompts for it (set the first time).
            password = demo.signing_password(session, actor, at) if runtime.rules_of(task).signature else None
            done = engine.complete(session, task.id, actor, at, data, password=password)
            open_tasks = store.tasks_of_instance(session, done.instance_id, engine.ACTIVE_TASK)
            session.flush()
            measured["engine"] = time.perf_counter() - began
            measured["state"] = len(done.instance.state.encode("utf-8"))
            return open_tasks
        return self.db.run(work), measured["engine"], measured["state"]

    def run_instances(self, count: int, process_key: str, answer: Answer, prefix: str) -> Timings:
        """Start ``count`` instances and complete every task of each, one command at a time."""
        timings = Timings()
        clock = T0
        began, cpu = time.perf_counter(), time.process_time()
        for n in range(count):
            clock += timedelta(minutes=1)
            instance_id, open_tasks = self.start(process_key, f"{prefix}-{n}", clock)
            asked: dict[str, int] = {}
            largest = 0
            while open_tasks:
                task = open_tasks[0]
                data = answer(task.name, task.form_key, asked.get(task.name, 0))
                asked[task.name] = asked.get(task.name, 0) + 1
                t = time.perf_counter()
                open_tasks, engine_time, state = self.complete(task, data, clock)
                timings.latencies.append(time.perf_counter() - t)
                timings.engine_times.append(engine_time)
                largest = max(largest, state)
                timings.completions += 1
            timings.state_bytes.append(largest)
            timings.instance_ids.append(instance_id)
            timings.instances += 1
        timings.seconds, timings.cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
        return timings

    def naive_inputs(self, process_key: str, answer: Answer) -> tuple[dict, Answer]:
        """The naive engine's initial data (the process settings) and answers coerced by the task's form."""
        def work(session):
            return runtime.definition_of(store.latest_definition(session, process_key))
        definition = self.db.run(work)
        forms = {info["bpmn_id"]: info["form"] for info in definition.manifest["user_tasks"].values()}

        done: dict[tuple[str, int], dict] = {}

        def coerced(name: str, _form: str, round_: int) -> dict:
            if (name, round_) not in done:
                form = forms[name]
                done[(name, round_)] = definition.forms[form].validate(answer(name, form, round_))
            return done[(name, round_)]
        return dict(definition.settings), coerced


def run_naive(naive, count: int, initial: dict, answer: Answer) -> Timings:
    """Run ``count`` instances through the naive engine (or the in-memory one), completing every task."""
    timings = Timings()
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        instance_id, ready = naive.start(dict(initial))
        asked: dict[str, int] = {}
        while ready:
            task_id, name = ready[0]
            data = answer(name, "", asked.get(name, 0))
            asked[name] = asked.get(name, 0) + 1
            t = time.perf_counter()
            ready = naive.complete(instance_id, task_id, data)
            timings.latencies.append(time.perf_counter() - t)
            timings.completions += 1
        timings.instance_ids.append(instance_id)
        timings.instances += 1
    timings.seconds, timings.cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    if hasattr(naive, "state_bytes"):
        timings.state_bytes = [naive.state_bytes(i) for i in timings.instance_ids]
    return timings

"""What each optimisation lever saves, measured so that a noisy machine hardly moves it.

Whole-command timings swing by tens of percent here, more than most single levers save, so each
lever is measured on its own: the best of many repetitions of exactly the work it removes or adds
(the minimum is the repetition least disturbed by neighbours), next to the best whole completion,
plus the SQL statements SQLite executes per completion (a count, not a time).
"""

import base64
import json
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, func, select

from engine import Database, audit, runtime, snapshot, store
from engine.sandbox import make_script_engine

from . import process, workload

REPEAT = 200


def best_of(work, repeat: int = REPEAT) -> float:
    """The shortest of ``repeat`` runs of ``work()``, in microseconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best * 1e6


@dataclass
class Lever:
    """One lever: what it does and its cost or saving per completion."""

    name: str
    micros: float
    note: str


def _statements_per_command(driver: workload.Driver) -> float:
    """SQL statements SQLite runs per command (BEGIN and COMMIT included), over whole 8-task instances."""
    counts = {"n": 0}

    def work_counting(work):
        def wrapped(session):
            raw = session.connection().connection.dbapi_connection
            raw.set_trace_callback(lambda _sql: counts.__setitem__("n", counts["n"] + 1))
            try:
                return work(session)
            finally:
                raw.set_trace_callback(None)
        return wrapped

    original = driver.db.run
    driver.db.run = lambda work, retries=3: original(work_counting(work), retries)
    try:
        timings = driver.run_instances(3, process.process_key(8), workload.sequential_answer, "count")
    finally:
        driver.db.run = original
    return counts["n"] / (timings.completions + timings.instances)


class _RollBack(Exception):
    """Ends a measuring transaction so that nothing it wrote is kept."""


def _rolled_back(db: Database, work):
    """``work(session)``'s answer, from a transaction that is then rolled back."""
    answer = {}

    def run(session):
        answer["value"] = work(session)
        raise _RollBack
    try:
        db.run(run)
    except _RollBack:
        pass
    return answer["value"]


def _write_costs(session, instance_id: int) -> dict[str, float]:
    """Best-of costs (µs) of the write and query paths a completion takes, old way and new, in one transaction."""
    seqs = iter(range(10**6, 10**7))

    def event() -> store.EventRow:  # a system-chain event (unique seq), as audit.record builds one
        return store.EventRow(instance_id=None, seq=next(seqs), at=workload.T0, actor="bench", kind="bench",
                              task_id=None, definition_hash=None, data={"n": 1}, prev_hash="0" * 64, hash="0" * 64)

    def task() -> store.TaskRow:  # a new human task of the instance, as the task sync builds one
        return store.TaskRow(instance_id=instance_id, spiff_id="bench", process="bench", name="bench", title="bench",
                             department="sales", role=None, form_key="bench", status="cancelled",
                             created_at=workload.T0, escalation_level=0)

    def orm_task():
        session.add(task())
        session.flush()

    def orm_event():
        session.add(event())
        session.flush()

    def built_query():
        return list(session.scalars(select(store.TaskRow).where(store.TaskRow.instance_id == instance_id,
                                                                store.TaskRow.status.in_(runtime.ACTIVE_TASK))
                                    .order_by(store.TaskRow.id)))
    return {
        "event orm": best_of(orm_event),
        "event core": best_of(lambda: store.add_event(session, event())),
        "task orm": best_of(orm_task),
        "task core": best_of(lambda: store.add_task(session, task())),
        "tasks built": best_of(built_query),
        "tasks prebuilt": best_of(lambda: store.tasks_of_instance(session, instance_id, runtime.ACTIVE_TASK)),
        "next escalation": best_of(lambda: store.next_escalation(session, instance_id, runtime.ACTIVE_TASK)),
    }


def _sql_alone(driver: workload.Driver, path: Path) -> float:
    """Best-of µs of exactly the SQL one completion ran (statements and parameters as SQLAlchemy sent them),
    replayed through the bare sqlite3 driver on a copy of the database as the completion found it, in a
    transaction that is rolled back each time: the floor under the ORM."""
    sent: list[tuple[str, object, bool]] = []

    def capture(_conn, _cursor, statement, parameters, _context, executemany):
        sent.append((statement, parameters, executemany))
    _, open_tasks = driver.start(process.process_key(8), "sql-alone", workload.T0)
    before = path.with_name("sql-alone.db")  # the database as the completion found it, to replay against
    with sqlite3.connect(str(path)) as source, sqlite3.connect(str(before)) as copy:
        source.backup(copy)
    event.listen(driver.db.engine, "before_cursor_execute", capture)
    try:
        task = open_tasks[0]
        driver.complete(task, workload.sequential_answer(task.name, task.form_key, 0), workload.T0)
    finally:
        event.remove(driver.db.engine, "before_cursor_execute", capture)
    connection = sqlite3.connect(str(before), isolation_level=None)

    def replay():
        cursor = connection.cursor()
        for statement, parameters, many in sent:
            (cursor.executemany if many else cursor.execute)(statement, parameters)
            cursor.fetchall()
        connection.execute("ROLLBACK")
    micros = best_of(replay)
    connection.close()
    return micros


def measure(scratch: Path) -> tuple[list[Lever], dict[str, float]]:
    """Each lever's micro-cost, and the context: best completion, statements per command."""
    db = Database(f"sqlite:///{scratch / 'levers.db'}", sqlite_synchronous="NORMAL")
    driver = workload.Driver.prepare(db, (8,), scratch)
    instance_id, open_tasks = driver.start(process.process_key(8), "levers", workload.T0)
    for _ in range(7):
        task = open_tasks[0]
        open_tasks, _, _ = driver.complete(task, workload.sequential_answer(task.name, task.form_key, 0), workload.T0)
    instance = db.run(lambda s: store.get_instance(s, instance_id))
    definition = db.run(lambda s: runtime.definition_of(store.get_instance(s, instance_id).definition))
    script_engine = make_script_engine()
    workflow = snapshot.load(instance.state, definition.spec, definition.subprocess_specs, script_engine)
    plain = zlib.decompress(base64.b64decode(instance.state.split(":", 1)[1]))
    files = json.dumps({"artifacts": definition.artifacts, "manifest": definition.manifest}, ensure_ascii=False)
    complaint = db.run(lambda s: runtime.definition_of(store.latest_definition(s, workload.COMPLAINT)))
    complaint_files = json.dumps({"artifacts": complaint.artifacts, "manifest": complaint.manifest}, ensure_ascii=False)

    def org_before(session):  # what runtime.organisation did before: load the row, hash its content
        row = store.current_organisation(session)
        return audit.canonical(row.content)

    def org_now(session):  # the id query alone (a command now runs it once and keeps the answer)
        return session.scalar(select(func.max(store.OrganisationRow.id)))

    session_work = {"org before": org_before, "org now": org_now}
    org_costs = {}
    for label, work in session_work.items():
        org_costs[label] = db.run(lambda s, w=work: best_of(lambda: w(s)))  # inside one transaction: the query alone
    writes = _rolled_back(db, lambda s: _write_costs(s, instance_id))
    statements = _statements_per_command(driver)
    best_completion = min(
        min(driver.run_instances(1, process.process_key(8), workload.sequential_answer, f"best-{n}").latencies)
        for n in range(5)) * 1e6
    levers = [
        Lever("workflow cache: no snapshot.load on a completion", best_of(lambda: snapshot.load(
            instance.state, definition.spec, definition.subprocess_specs, script_engine)),
              "saved per completion when this process saved the instance last (the normal case for one worker)"),
        Lever("definition files deferred: no JSON decode of the pinned files", best_of(lambda: json.loads(files)),
              f"saved per command, 8-task process ({len(files):,} B); the complaint's "
              f"({len(complaint_files):,} B): {best_of(lambda: json.loads(complaint_files)):.0f} µs"),
        Lever("organisation by row id: id query instead of row load + canonical JSON",
              org_costs["org before"] - org_costs["org now"],
              f"saved per command ({org_costs['org before']:.0f} µs before, {org_costs['org now']:.0f} µs now)"),
        Lever("history event: prepared INSERT instead of the unit of work", writes["event orm"] - writes["event core"],
              f"saved per event, two or three per completion ({writes['event orm']:.0f} µs as ORM add + flush, "
              f"{writes['event core']:.0f} µs now)"),
        Lever("new task row: prepared INSERT instead of a flush", writes["task orm"] - writes["task core"],
              f"saved per new task ({writes['task orm']:.0f} µs as ORM add + flush, {writes['task core']:.0f} µs now; "
              "the flush also wrote the instance row a second time per command, not counted here)"),
        Lever("statements built once: an instance's open tasks", writes["tasks built"] - writes["tasks prebuilt"],
              f"saved per query, two per completion ({writes['tasks built']:.0f} µs building the statement each "
              f"time, {writes['tasks prebuilt']:.0f} µs now)"),
        Lever("next escalation from the task rows in hand, not queried", writes["next escalation"],
              "saved per command (besides the flush the query forced before it)"),
        Lever("organisation id once per command", org_costs["org now"],
              "saved per completion (it was asked for twice)"),
        Lever("snapshot.dump (Spiff to_dict + JSON + deflate)", best_of(lambda: snapshot.dump(workflow)),
              "paid per command; the part below is the deflate"),
        Lever("deflate + base64 of the state", best_of(lambda: base64.b64encode(zlib.compress(plain, 1)).decode()),
              f"paid per save: {len(plain):,} B of JSON become {len(instance.state):,} B"),
    ]
    context = {"best completion µs": best_completion, "statements per command": statements,
               "sql alone µs": _sql_alone(driver, scratch / "levers.db")}
    db.dispose()
    return levers, context


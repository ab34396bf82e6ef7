"""What each optimisation lever saves, measured so that a noisy machine hardly moves it.

Whole-command timings swing by tens of percent here, more than most single levers save, so each
lever is measured on its own: the best of many repetitions of exactly the work it removes or adds
(the minimum is the repetition least disturbed by neighbours), next to the best whole completion,
plus the SQL statements SQLite executes per completion (a count, not a time).
"""

import base64
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

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

    session_work = {"org before": org_before, "org now": store.current_organisation_id}
    org_costs = {}
    for label, work in session_work.items():
        org_costs[label] = db.run(lambda s, w=work: best_of(lambda: w(s)))  # inside one transaction: the query alone
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
        Lever("snapshot.dump (Spiff to_dict + JSON + deflate)", best_of(lambda: snapshot.dump(workflow)),
              "paid per command; the part below is the deflate"),
        Lever("deflate + base64 of the state", best_of(lambda: base64.b64encode(zlib.compress(plain, 1)).decode()),
              f"paid per save: {len(plain):,} B of JSON become {len(instance.state):,} B"),
    ]
    context = {"best completion µs": best_completion, "statements per command": statements}
    db.dispose()
    return levers, context


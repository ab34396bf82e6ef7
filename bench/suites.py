"""The measurements: each function runs one group of rows of BENCHMARKS.md and returns its figures.

Within a group the compared things run interleaved, run after run (qproc, then the naive engine,
then qproc again…), so a burst of load from a neighbour hits both sides; ratios are taken per run
pair and then summarised.
"""

import multiprocessing
import sqlite3
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import engine
from engine import Database, audit, replay, store

from . import baseline, fill, process, workload
from .stats import Figure, figure, percentile

SEQ = process.process_key(8)
BIG = process.process_key(100)
PAGE = 50  # an inbox page as a screen shows it (the CLI lists up to 500)


@dataclass(frozen=True)
class Config:
    """How much work each group does."""

    name: str
    runs: int
    instances: int            # 8-task instances per run and side
    complaints: int           # complaint instances per run and side
    memory_instances: int     # in-memory reference, per run
    commits: int              # small-row commits per run
    stored: tuple[int, ...]   # stored-instance levels for the scaling rows
    scale_instances: int      # instances completed per run at each level
    inbox_queries: int        # inbox queries per run at each level
    worker_instances: int     # 8-task instances per PostgreSQL worker
    warmup: int = 2           # untimed instances per side before a comparison


QUICK = Config("quick", runs=3, instances=6, complaints=2, memory_instances=40, commits=100,
               stored=(1_000, 10_000), scale_instances=3, inbox_queries=5, worker_instances=3)
FULL = Config("full", runs=3, instances=20, complaints=3, memory_instances=150, commits=300,
              stored=(1_000, 10_000, 100_000), scale_instances=5, inbox_queries=10, worker_instances=15)


def _throughput(runs: list[workload.Timings]) -> dict[str, Figure]:
    return {
        "instances/s": figure(t.instances / t.seconds for t in runs),
        "completions/s": figure(t.completions / t.seconds for t in runs),
        "p50 ms": figure(1e3 * percentile(t.latencies, 0.5) for t in runs),
        "p99 ms": figure(1e3 * percentile(t.latencies, 0.99) for t in runs),
        "cpu ms": figure(1e3 * t.cpu_seconds / t.completions for t in runs),
    }


@dataclass
class Comparison:
    """qproc against the naive engine on one workload, run pair by run pair."""

    ours: list[workload.Timings] = field(default_factory=list)
    naive: list[workload.Timings] = field(default_factory=list)
    history_bytes: float = 0.0

    @property
    def ours_figures(self) -> dict[str, Figure]:
        """Throughput, latency and engine time of qproc."""
        figures = _throughput(self.ours)
        figures["engine p50 ms"] = figure(1e3 * percentile(t.engine_times, 0.5) for t in self.ours)
        figures["engine p99 ms"] = figure(1e3 * percentile(t.engine_times, 0.99) for t in self.ours)
        return figures

    @property
    def naive_figures(self) -> dict[str, Figure]:
        """Throughput and latency of the naive engine."""
        return _throughput(self.naive)

    def ratio(self, key: str = "instances/s") -> Figure:
        """qproc's figure over the naive one, per run pair (for latencies: naive over qproc, so higher is better)."""
        if key == "cpu ms":
            return figure((n.cpu_seconds / n.completions) / (o.cpu_seconds / o.completions)
                          for o, n in zip(self.ours, self.naive))
        if key.endswith("ms"):
            q = float(key[1:3]) / 100
            pairs = zip(self.ours, self.naive)
            return figure(percentile(n.latencies, q) / percentile(o.latencies, q) for o, n in pairs)
        attr = "instances" if key == "instances/s" else "completions"
        return figure((getattr(o, attr) / o.seconds) / (getattr(n, attr) / n.seconds)
                      for o, n in zip(self.ours, self.naive))

    @property
    def state_bytes(self) -> tuple[int, int]:
        """Largest hot-row state per instance: qproc's, the naive engine's."""
        return max(max(t.state_bytes) for t in self.ours), max(max(t.state_bytes) for t in self.naive)


def history_bytes(db: Database, instance_ids: list[int]) -> float:
    """Mean stored size of an instance's history events (text as UTF-8, 8 bytes per number or time)."""
    def work(session):
        total = 0
        for instance_id in instance_ids:
            for row in store.events_of(session, instance_id):
                text = (row.actor, row.kind, row.definition_hash or "", row.prev_hash, row.hash,
                        audit.canonical(row.data))
                total += sum(len(t.encode("utf-8")) for t in text) + 8 * 5
        return total / len(instance_ids)
    return db.run(work)


@dataclass
class Backend:
    """Where one backend's table is measured: qproc's database and a connection for the naive engine."""

    label: str
    db: Database
    naive_connection: object
    dialect: str = "sqlite"


def compare(backend: Backend, driver: workload.Driver, process_key: str, answer, count: int, cfg: Config,
            bpmn: tuple[Path, ...]) -> Comparison:
    """qproc and the naive engine on ``count`` instances of ``process_key`` per run, ``cfg.runs`` interleaved runs."""
    initial, coerced = driver.naive_inputs(process_key, answer)
    spec, subprocess_specs = baseline.parse([str(path) for path in bpmn], process_key)
    naive = baseline.NaiveEngine(backend.naive_connection, spec, subprocess_specs, backend.dialect)
    driver.run_instances(cfg.warmup, process_key, answer, f"warm-{process_key}")
    workload.run_naive(naive, cfg.warmup, initial, coerced)
    result = Comparison()
    for n in range(cfg.runs):
        result.ours.append(driver.run_instances(count, process_key, answer, f"run{n}-{process_key}"))
        result.naive.append(workload.run_naive(naive, count, initial, coerced))
    result.history_bytes = history_bytes(backend.db, result.ours[-1].instance_ids)
    return result


@dataclass
class Audit:
    """Checking finished instances: history chain verification and replay, instances per second."""

    verify: Figure
    replay: Figure
    matched: int
    replayed: int


def audit_speed(db: Database, instance_ids: list[int], runs: int) -> Audit:
    """``qproc audit verify`` and ``qproc audit replay`` over the given instances, one transaction per pass."""
    verify, replayed, outcomes = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        db.run(lambda s: [audit.verify(s, i) for i in instance_ids])
        verify.append(len(instance_ids) / (time.perf_counter() - began))
        began = time.perf_counter()
        outcomes = db.run(lambda s: [replay.replay(s, i).match for i in instance_ids])
        replayed.append(len(instance_ids) / (time.perf_counter() - began))
    return Audit(figure(verify), figure(replayed), sum(outcomes), len(outcomes))


@dataclass
class BackendResult:
    """One backend's table."""

    label: str
    sequential: Comparison
    complaint: Comparison
    audit: Audit


def measure_backend(backend: Backend, cfg: Config, scratch: Path) -> BackendResult:
    """The 8-task process and the customer complaint on one backend, qproc against the naive engine."""
    driver = workload.Driver.prepare(backend.db, (8,), scratch)
    sequential = compare(backend, driver, SEQ, workload.sequential_answer, cfg.instances, cfg,
                         (process.SHIPPED,))
    complaint = compare(backend, driver, workload.COMPLAINT, workload.complaint_answer, cfg.complaints, cfg,
                        workload.COMPLAINT_FILES)
    checked = audit_speed(backend.db, sequential.ours[-1].instance_ids, cfg.runs)
    return BackendResult(backend.label, sequential, complaint, checked)


# --- reference limits --------------------------------------------------------------------------

def in_memory(cfg: Config) -> Figure:
    """Instances/s of the 8-task process in SpiffWorkflow alone, nothing stored."""
    spec, subprocess_specs = baseline.parse([str(process.SHIPPED)], SEQ)
    answer = lambda name, _form, _round: process.ANSWERS[process.step_form(int(name.split("_")[1]))]  # noqa: E731
    workload.run_naive(baseline.InMemoryEngine(spec, subprocess_specs), 5, {}, answer)
    runs = [workload.run_naive(baseline.InMemoryEngine(spec, subprocess_specs), cfg.memory_instances, {}, answer)
            for _ in range(cfg.runs)]
    return figure(t.instances / t.seconds for t in runs)


def commit_rate(connect, cfg: Config, placeholder: str = "?") -> Figure:
    """Commits/s of one small-row insert per transaction on a DB-API connection in autocommit mode."""
    connection = connect()
    connection.execute("CREATE TABLE IF NOT EXISTS bench_commits (id INTEGER PRIMARY KEY, payload TEXT)")
    payload = "x" * 100
    rates = []
    for run in range(cfg.runs):
        began = time.perf_counter()
        for n in range(cfg.commits):
            connection.execute("BEGIN")
            connection.execute(f"INSERT INTO bench_commits (id, payload) VALUES ({placeholder}, {placeholder})",
                               (run * cfg.commits + n + 1, payload))
            connection.execute("COMMIT")
        rates.append(cfg.commits / (time.perf_counter() - began))
    connection.execute("DROP TABLE bench_commits")
    return figure(rates)


def parallel_commit_rate(connect, cfg: Config, connections: int = 4) -> Figure:
    """Aggregate commits/s of ``connections`` threads, each committing one small-row insert per transaction
    on its own connection (what a server's commit path allows several workers at once)."""
    setup = connect()
    setup.execute("CREATE TABLE IF NOT EXISTS bench_commits (id INTEGER PRIMARY KEY, payload TEXT)")
    rates = []
    for run in range(cfg.runs):
        def commit_many(thread: int, run: int = run) -> None:
            connection = connect()
            for n in range(cfg.commits):
                connection.execute("BEGIN")
                connection.execute("INSERT INTO bench_commits (id, payload) VALUES (%s, %s)",
                                   (((run * connections + thread) * cfg.commits) + n + 1, "x" * 100))
                connection.execute("COMMIT")
            connection.close()
        threads = [threading.Thread(target=commit_many, args=(t,)) for t in range(connections)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates.append(connections * cfg.commits / (time.perf_counter() - began))
    setup.execute("DROP TABLE bench_commits")
    setup.close()
    return figure(rates)


def sqlite_commit_rate(path: Path, synchronous: str, cfg: Config) -> Figure:
    """Small-row commits/s of SQLite in WAL mode with the given synchronous setting."""
    return commit_rate(lambda: baseline.sqlite_connection(str(path), synchronous), cfg)


# --- scaling -----------------------------------------------------------------------------------

@dataclass
class Level:
    """Figures at one number of stored instances."""

    stored: int
    open_tasks: int
    p50_ms: Figure
    p99_ms: Figure
    cpu_ms: Figure
    inbox_ms: Figure
    page_ms: Figure


def inbox_query(db: Database, actor: str, limit: int = 500) -> float:
    """Seconds for one ``qproc tasks`` as the actor, the query exactly as the CLI makes it: their departments'
    open and claimed tasks and those escalated to them, up to ``limit``."""
    def work(session):
        departments = engine.visible_departments(session, actor, None)
        return store.inbox(session, departments, engine.ACTIVE_TASK, escalated_to=actor, limit=limit)
    began = time.perf_counter()
    db.run(work)
    return time.perf_counter() - began


def scaling(db: Database, cfg: Config, scratch: Path) -> list[Level]:
    """Completion latency and inbox query time as the stored instances (each with an open task) grow."""
    driver = workload.Driver.prepare(db, (8,), scratch)
    filler = fill.Filler(driver)
    clerk = driver.actors[("sales", None)]
    levels = []
    for stored in cfg.stored:
        filler.fill_to(stored - len(filler.templates))
        inbox_query(db, clerk)
        runs, inbox, page = [], [], []
        for n in range(cfg.runs):
            runs.append(driver.run_instances(cfg.scale_instances, SEQ, workload.sequential_answer, f"s{stored}-{n}"))
            inbox.append(statistics.median([inbox_query(db, clerk) for _ in range(cfg.inbox_queries)]))
            page.append(statistics.median([inbox_query(db, clerk, PAGE) for _ in range(cfg.inbox_queries)]))
        levels.append(Level(stored, filler.added + len(filler.templates),
                            figure(1e3 * percentile(t.latencies, 0.5) for t in runs),
                            figure(1e3 * percentile(t.latencies, 0.99) for t in runs),
                            figure(1e3 * t.cpu_seconds / t.completions for t in runs),
                            figure(1e3 * s for s in inbox), figure(1e3 * s for s in page)))
    return levels


@dataclass
class Size:
    """Cost per task of the 100-task process against the 8-task one: wall and CPU milliseconds per completion."""

    wall: dict[str, Figure]   # keys: ours_8, ours_100, naive_8, naive_100
    cpu: dict[str, Figure]

    @staticmethod
    def ratio(big: Figure, small: Figure) -> Figure:
        """Per-run ratio of two figures measured in the same runs."""
        return figure(b / s for b, s in zip(big.runs, small.runs))


def process_size(db: Database, naive_connection, cfg: Config, scratch: Path) -> Size:
    """Milliseconds per task completion (whole instances, starts included) for 8 and 100 sequential tasks."""
    driver = workload.Driver.prepare(db, (8, 100), scratch)
    naive_8 = baseline.NaiveEngine(naive_connection, *baseline.parse([str(process.SHIPPED)], SEQ))
    big_file = process.write_process(100, scratch)
    naive_100 = baseline.NaiveEngine(naive_connection, *baseline.parse([str(big_file)], BIG))
    inputs = {key: driver.naive_inputs(key, workload.sequential_answer) for key in (SEQ, BIG)}
    wall: dict[str, list[float]] = {"ours_8": [], "ours_100": [], "naive_8": [], "naive_100": []}
    cpu: dict[str, list[float]] = {key: [] for key in wall}
    small = max(1, cfg.instances // 3)
    driver.run_instances(1, BIG, workload.sequential_answer, "size100-warm")
    for n in range(cfg.runs):
        timings = {
            "ours_8": driver.run_instances(small, SEQ, workload.sequential_answer, f"size8-{n}"),
            "ours_100": driver.run_instances(1, BIG, workload.sequential_answer, f"size100-{n}"),
            "naive_8": workload.run_naive(naive_8, small, *inputs[SEQ]),
            "naive_100": workload.run_naive(naive_100, 1, *inputs[BIG]),
        }
        for key, t in timings.items():
            wall[key].append(1e3 * t.seconds / t.completions)
            cpu[key].append(1e3 * t.cpu_seconds / t.completions)
    return Size({k: figure(v) for k, v in wall.items()}, {k: figure(v) for k, v in cpu.items()})


# --- PostgreSQL workers ------------------------------------------------------------------------

def _worker(url: str, worker: int, count: int, runs: int, start, results) -> None:
    db = Database(url)
    driver = workload.Driver(db)
    driver.run_instances(1, SEQ, workload.sequential_answer, f"w{worker}-warm")
    for run in range(runs):
        start.wait()
        began = time.perf_counter()
        timings = driver.run_instances(count, SEQ, workload.sequential_answer, f"w{worker}-{run}")
        results.put((began, time.perf_counter(), timings.completions, timings.instances))
    db.dispose()


def workers(url: str, count: int, cfg: Config) -> tuple[Figure, Figure]:
    """Aggregate completions/s and instances/s of ``count`` processes each running its own instances, per run."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(count + 1), context.Queue()
    procs = [context.Process(target=_worker, args=(url, f"{count}.{w}", cfg.worker_instances, cfg.runs, start, results))
             for w in range(count)]
    for proc in procs:
        proc.start()
    completions, instances = [], []
    for _ in range(cfg.runs):
        start.wait(timeout=300)
        outcomes = [results.get(timeout=600) for _ in procs]
        seconds = max(o[1] for o in outcomes) - min(o[0] for o in outcomes)
        completions.append(sum(o[2] for o in outcomes) / seconds)
        instances.append(sum(o[3] for o in outcomes) / seconds)
    for proc in procs:
        proc.join()
    return figure(completions), figure(instances)


def pg_workers(url: str, cfg: Config, counts=(1, 4)) -> dict[int, tuple[Figure, Figure]]:
    """Completions/s and instances/s with 1 and 4 concurrent worker processes."""
    return {count: workers(url, count, cfg) for count in counts}


def sqlite_version() -> str:
    """The SQLite library version Python uses."""
    return sqlite3.sqlite_version


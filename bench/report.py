"""BENCHMARKS.md: the measured figures as Markdown tables, the targets checked, the profile, the findings."""

from dataclasses import dataclass, field
from pathlib import Path

from .stats import Figure
from .suites import PAGE, BackendResult, Comparison, Level, Size

FINDINGS = Path(__file__).resolve().parent / "FINDINGS.md"


@dataclass
class Results:
    """Everything one run of the benchmark measured."""

    header: list[str]
    backends: list[BackendResult] = field(default_factory=list)
    memory: Figure | None = None
    commit_rates: dict[str, Figure] = field(default_factory=dict)
    levels: list[Level] = field(default_factory=list)
    size: Size | None = None
    workers: dict[int, tuple[Figure, Figure]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profile: str = ""
    levers: list = field(default_factory=list)
    lever_context: dict = field(default_factory=dict)
    loads: list[tuple[str, float]] = field(default_factory=list)  # (group, 1-minute load average as it started)


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _kb(value: float) -> str:
    return f"{value:,.0f} B ({value / 1024:.1f} KiB)"


def _comparison_rows(title: str, c: Comparison) -> list[list[str]]:
    ours, naive = c.ours_figures, c.naive_figures
    state_ours, state_naive = c.state_bytes
    return [
        [f"**{title}**", "", "", ""],
        ["instances/s", ours["instances/s"].show(1), naive["instances/s"].show(1), c.ratio("instances/s").show(2, "×")],
        ["task completions/s", ours["completions/s"].show(0), naive["completions/s"].show(0),
         c.ratio("completions/s").show(2, "×")],
        ["completion latency p50, ms", ours["p50 ms"].show(2), naive["p50 ms"].show(2), c.ratio("p50 ms").show(2, "×")],
        ["completion latency p99, ms", ours["p99 ms"].show(2), naive["p99 ms"].show(2), c.ratio("p99 ms").show(2, "×")],
        ["CPU time per completion, ms (this process; starts included)", ours["cpu ms"].show(2),
         naive["cpu ms"].show(2), c.ratio("cpu ms").show(2, "×")],
        ["engine time p50 / p99, ms (before commit)",
         f"{ours['engine p50 ms'].show(2)} / {ours['engine p99 ms'].show(2)}", "—", ""],
        ["state bytes per instance (hot row, largest)", _kb(state_ours), _kb(state_naive),
         f"{state_naive / state_ours:.1f}× smaller"],
        ["history bytes per instance", _kb(c.history_bytes), "none kept apart (only the task tree in its row)", ""],
    ]


def _verdict(measured: float, target: float, higher_is_better: bool) -> str:
    met = measured >= target if higher_is_better else measured <= target
    if met:
        return "met"
    factor = target / measured if higher_is_better else measured / target
    return f"**missed** by {factor:.2f}×"


def _targets(r: Results) -> list[str]:
    rows = []
    by_label = {b.label: b for b in r.backends}
    normal = next((b for label, b in by_label.items() if "NORMAL" in label), None)
    full = next((b for label, b in by_label.items() if "FULL" in label), None)
    if normal:
        ratio, cpu = normal.sequential.ratio().median, normal.sequential.ratio("cpu ms").median
        rows.append(["SQLite NORMAL: ≥ 4× the naive engine's instances/s",
                     f"{ratio:.2f}× (CPU time: {cpu:.2f}×)", _verdict(ratio, 4, True)])
        p99 = normal.sequential.ours_figures["engine p99 ms"].median
        rows.append(["SQLite NORMAL: completion p99 ≤ 1 ms of engine time", f"{p99:.2f} ms", _verdict(p99, 1, False)])
        state = normal.sequential.state_bytes[0]
        rows.append(["state ≤ 5 KB per instance (hot row, 8-task process)", _kb(state),
                     _verdict(state, 5 * 1024, False)])
    if full:
        ratio, cpu = full.sequential.ratio().median, full.sequential.ratio("cpu ms").median
        rows.append(["SQLite FULL: ≥ 2.5× the naive engine's instances/s",
                     f"{ratio:.2f}× (CPU time: {cpu:.2f}×)", _verdict(ratio, 2.5, True)])
    if r.levels:
        first, last = r.levels[0], r.levels[-1]
        growth = last.p50_ms.median / first.p50_ms.median
        cpu = last.cpu_ms.median / first.cpu_ms.median
        rows.append([f"completion latency at {last.stored:,} stored within 1.2× of {first.stored:,} (p50)",
                     f"{growth:.2f}× (CPU time: {cpu:.2f}×)", _verdict(growth, 1.2, False)])
        rows.append([f"inbox query at {last.open_tasks:,} open tasks < 20 ms",
                     f"{last.inbox_ms.median:.1f} ms (a page of {PAGE}: {last.page_ms.median:.1f} ms)",
                     _verdict(last.inbox_ms.median, 20, False)])
    if r.size:
        ours = Size.ratio(r.size.cpu["ours_100"], r.size.cpu["ours_8"]).median
        naive = Size.ratio(r.size.cpu["naive_100"], r.size.cpu["naive_8"]).median
        rows.append(["cost per task flat from 8 to 100 tasks (CPU ms per task, 100 ÷ 8)",
                     f"{ours:.2f}× (naive engine: {naive:.2f}×)", "no number set; see Scaling"])
    if 4 in r.workers:
        rate = r.workers[4][0].median
        rows.append(["PostgreSQL, 4 workers: ≥ 2,500 task completions/s", f"{rate:,.0f}/s", _verdict(rate, 2500, True)])
    return _table(["target", "measured (median)", "verdict"], rows)


def render(r: Results) -> str:
    """The whole BENCHMARKS.md."""
    out = ["# Benchmarks", "", *r.header, ""]
    if r.loads:
        loads = [load for _, load in r.loads]
        out += [f"Load average (1 minute) of the 2-core machine during this run: {min(loads):.1f}–{max(loads):.1f}; "
                "as each group of rows started: " + "; ".join(f"{group} {load:.1f}" for group, load in r.loads) + ".",
                ""]
    out += ["## Targets", "", *_targets(r), ""]
    out += ["## qproc against the naive engine, per backend", "",
            "Workloads: `bench/processes/sequential_8.bpmn` (8 sequential user tasks in four lanes, forms "
            "`bench/forms/`) and the shipped `customer_complaint` along its longest common path (our "
            "responsibility, CAPA effective the first time, through the CAPA procedure it calls: 18 user tasks). qproc: `engine.start` / "
            "`engine.complete` in `Database.run`, one transaction per command, then the open tasks read back as "
            "the CLI does. Naive: `bench/baseline.py`, SpiffWorkflow 3.2 serializing the whole workflow with its "
            "spec after every task into one row, one commit per task. Ratio = qproc ÷ naive per run pair "
            "(latencies: naive ÷ qproc, so above 1 is better for qproc).", ""]
    for backend in r.backends:
        rows = _comparison_rows("8 sequential user tasks", backend.sequential)
        rows += _comparison_rows("customer_complaint, 18 tasks", backend.complaint)
        a = backend.audit
        rows += [["**audit of the 8-task instances**", "", "", ""],
                 ["history verification (`qproc audit verify`), instances/s", a.verify.show(0), "—", ""],
                 [f"replay (`qproc audit replay`), instances/s — {a.matched} of {a.replayed} MATCH", a.replay.show(0),
                  "—", ""]]
        out += [f"### {backend.label}", "", *_table(["", "qproc", "naive", "ratio"], rows), ""]
    out += ["## Reference limits", ""]
    ref = []
    if r.memory:
        ref.append(["SpiffWorkflow in memory, nothing stored (8-task instances/s)", r.memory.show(0)])
    ref += [[f"{label}: small-row commits/s (one insert per transaction; aggregate)", fig.show(0)]
            for label, fig in r.commit_rates.items()]
    out += [*_table(["limit", "measured"], ref), ""]
    out += ["## Scaling", ""]
    if r.levels:
        out += ["Stored instances (SQLite NORMAL): each filler instance is running with one open task; latency "
                "is that of completing whole new 8-task instances; the inbox query is `qproc tasks` for a sales "
                "clerk exactly as the CLI queries it (`visible_departments` + `store.inbox`: the clerk's departments' "
                "open and claimed tasks and those escalated to the clerk, up to 500 rows, in one transaction), and "
                f"the same query for one page of {PAGE} rows.", ""]
        out += _table(["stored instances", "open tasks", "completion p50, ms", "completion p99, ms",
                       "CPU ms per completion", "inbox query (500 rows), ms", f"inbox page ({PAGE} rows), ms"],
                      [[f"{lv.stored:,}", f"{lv.open_tasks:,}", lv.p50_ms.show(2), lv.p99_ms.show(2),
                        lv.cpu_ms.show(2), lv.inbox_ms.show(1), lv.page_ms.show(1)] for lv in r.levels]) + [""]
    if r.size:
        s = r.size
        out += ["Process size (SQLite NORMAL): milliseconds per task completion over whole instances (starts "
                "included), the 100-task process against the 8-task one.", ""]
        rows = []
        for who, label in (("ours", "qproc"), ("naive", "naive")):
            for kind, figures in (("wall", s.wall), ("CPU", s.cpu)):
                small, big = figures[f"{who}_8"], figures[f"{who}_100"]
                rows.append([f"{label}, {kind} ms", small.show(2), big.show(2), Size.ratio(big, small).show(2, "×")])
        out += _table(["engine", "8 tasks, ms per task", "100 tasks, ms per task", "100 ÷ 8"], rows) + [""]
    if r.workers:
        out += ["PostgreSQL, concurrent worker processes, each running its own 8-task instances:", ""]
        out += _table(["workers", "task completions/s (aggregate)", "instances/s (aggregate)"],
                      [[str(n), c.show(0), i.show(1)] for n, (c, i) in sorted(r.workers.items())]) + [""]
    out += [f"- {note}" for note in r.notes] + [""]
    if r.levers:
        ctx = r.lever_context
        out += ["## Levers", "",
                "Each lever on its own, as the best of 200 repetitions of exactly the work it removes or adds (whole "
                "commands swing more with the neighbours' load than most levers save). For scale: the best single "
                f"completion in this run took {ctx['best completion µs']:,.0f} µs, and SQLite ran "
                f"{ctx['statements per command']:.1f} SQL statements per command (BEGIN and COMMIT included); "
                f"exactly the statements of one completion, replayed through the bare sqlite3 driver (no "
                f"SQLAlchemy, rolled back instead of committed), took {ctx.get('sql alone µs', float('nan')):,.0f} µs.",
                ""]
        out += _table(["lever", "µs", "what"], [[lv.name, f"{lv.micros:,.0f}", lv.note] for lv in r.levers]) + [""]
    if r.profile:
        out += ["## Profile", "", "pyinstrument, qproc on SQLite NORMAL, 8-task instances (same run):", "", "```",
                r.profile.rstrip(), "```", ""]
    if FINDINGS.exists():
        out += [FINDINGS.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(out)

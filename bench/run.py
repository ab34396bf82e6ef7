"""Run the benchmark and write BENCHMARKS.md.

    python -m bench.run            # quick mode (under a minute): prints the report
    python -m bench.run --full     # every row at full size; writes BENCHMARKS.md

PostgreSQL rows use ``--pg URL`` (default ``QPROC_BENCH_PG`` or a local server's ``test`` database):
the benchmark creates a database of its own there and drops it at the end; ``--pg none`` skips them.
"""

import argparse
import contextlib
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from engine import Database

from . import baseline, levers, suites
from .report import Results, render

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def pg_database(url: str):
    """A fresh PostgreSQL database next to ``url``'s, dropped afterwards; yields its SQLAlchemy URL."""
    import psycopg
    server, _, _ = url.rpartition("/")
    name = f"qproc_bench_{os.getpid()}"
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{server}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg_connection(url: str):
    import psycopg
    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True)


def _header(cfg: suites.Config, command: str, pg_version: str | None) -> list[str]:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    versions = ", ".join(f"{p} {version(p)}" for p in ("SpiffWorkflow", "SQLAlchemy"))
    return [
        f"Reproduce: `{command}` from the repository root, in the project's venv with `pip install -e '.[bench]'` "
        f"(without `--full`: the quick mode, fewer and smaller rows). This file: {cfg.name} mode, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, engine at commit {commit}.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"SQLite {suites.sqlite_version()}, {pg_version or 'no PostgreSQL'}, {versions}.",
        "",
        f"Each figure is the median of {cfg.runs} runs with the range (min–max) in brackets. The machine is "
        "shared with other jobs and noisy: absolute figures move from run to run by tens of percent, so only the "
        "ratios between things measured in the same run count; compared things run interleaved, run after run. "
        "CPU time per completion (of the benchmark's own process, which includes SQLite but not the PostgreSQL "
        "server) moves far less with the neighbours' load than wall time, so it is shown next to it.",
    ]


def measure(cfg: suites.Config, pg_url: str | None, scratch: Path, profile: bool, command: str) -> Results:
    """Run every group of measurements."""
    pg_version = None
    results = Results(header=[])

    def group(name: str) -> None:  # each group announced and its start's load average kept
        load = os.getloadavg()[0]
        results.loads.append((name, load))
        _say(f"{name} (load average {load:.1f})")
    for sync in ("NORMAL", "FULL"):
        group(f"SQLite {sync}: qproc and the naive engine")
        db = Database(f"sqlite:///{scratch / f'qproc-{sync}.db'}", sqlite_synchronous=sync)
        naive = baseline.sqlite_connection(str(scratch / f"naive-{sync}.db"), sync)
        results.backends.append(suites.measure_backend(
            suites.Backend(f"SQLite, WAL, synchronous={sync}", db, naive), cfg, scratch))
        db.dispose()
        naive.close()
        results.commit_rates[f"SQLite WAL synchronous={sync}"] = suites.sqlite_commit_rate(
            scratch / f"commits-{sync}.db", sync, cfg)
    group("SpiffWorkflow in memory")
    results.memory = suites.in_memory(cfg)
    group("scaling: stored instances and inbox")
    db = Database(f"sqlite:///{scratch / 'scaling.db'}", sqlite_synchronous="NORMAL")
    results.levels = suites.scaling(db, cfg, scratch)
    db.dispose()
    group("scaling: process size")
    db = Database(f"sqlite:///{scratch / 'size.db'}", sqlite_synchronous="NORMAL")
    naive = baseline.sqlite_connection(str(scratch / "naive-size.db"), "NORMAL")
    results.size = suites.process_size(db, naive, cfg, scratch)
    db.dispose()
    if pg_url:
        with pg_database(pg_url) as url:
            connection = _pg_connection(url)
            pg_version = "PostgreSQL " + connection.execute("SHOW server_version").fetchone()[0].split()[0]
            group("PostgreSQL: qproc and the naive engine")
            db = Database(url)
            results.backends.append(suites.measure_backend(
                suites.Backend("PostgreSQL (one worker)", db, connection, "postgresql"), cfg, scratch))
            db.dispose()
            results.commit_rates["PostgreSQL"] = suites.commit_rate(lambda: _pg_connection(url), cfg, "%s")
            results.commit_rates["PostgreSQL, 4 connections at once"] = suites.parallel_commit_rate(
                lambda: _pg_connection(url), cfg)
            group("PostgreSQL: 1 and 4 workers")
            results.workers = suites.pg_workers(url, cfg)
            connection.close()
    else:
        results.notes.append("PostgreSQL rows skipped (no server given).")
    group("levers")
    results.levers, results.lever_context = levers.measure(scratch)
    if profile:
        group("profile")
        results.profile = _profile(scratch)
    results.loads.append(("end", os.getloadavg()[0]))
    results.header = _header(cfg, command, pg_version)
    return results


def _profile(scratch: Path) -> str:
    from pyinstrument import Profiler

    from . import workload
    db = Database(f"sqlite:///{scratch / 'profile.db'}", sqlite_synchronous="NORMAL")
    driver = workload.Driver.prepare(db, (8,), scratch)
    driver.run_instances(3, suites.SEQ, workload.sequential_answer, "profile-warm")
    profiler = Profiler(interval=0.0005)
    profiler.start()
    driver.run_instances(10, suites.SEQ, workload.sequential_answer, "profile")
    profiler.stop()
    db.dispose()
    return profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, measure, print the report and write it where asked."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="every row at full size (takes several minutes)")
    parser.add_argument("--out", type=Path, help="write the report here (default with --full: BENCHMARKS.md)")
    parser.add_argument("--pg", default=os.environ.get("QPROC_BENCH_PG", DEFAULT_PG),
                        help="PostgreSQL server URL for the PostgreSQL rows, or 'none'")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="add the profile section (default: with --full only)")
    parser.add_argument("--save", type=Path, help="also keep the measured figures in this file (pickle)")
    parser.add_argument("--render", type=Path, help="measure nothing: render figures kept with --save")
    args = parser.parse_args(argv)
    cfg = suites.FULL if args.full else suites.QUICK
    command = "python -m bench.run" + (" --full" if args.full else "")
    out = args.out or (ROOT / "BENCHMARKS.md" if args.full else None)
    if args.render:
        results = pickle.loads(args.render.read_bytes())
    else:
        with tempfile.TemporaryDirectory(prefix="qproc-bench-") as scratch:
            profile = args.full if args.profile is None else args.profile
            results = measure(cfg, None if args.pg == "none" else args.pg, Path(scratch), profile, command)
    if args.save:
        args.save.write_bytes(pickle.dumps(results))
    text = render(results)
    print(text)
    if out:
        out.write_text(text, encoding="utf-8")
        _say(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The benchmark's machinery on tiny sizes: it runs, and compares what it claims to. No timing is asserted."""

import pytest

from bench import baseline, fill, process, suites, workload
from bench.report import Results, render
from engine import ACTIVE_TASK, Database, store

TINY = suites.Config("tiny", runs=1, instances=1, complaints=1, memory_instances=1, commits=1, stored=(20,),
                     scale_instances=1, inbox_queries=1, worker_instances=1, warmup=0)


def test_shipped_benchmark_process_is_the_generated_one():
    assert process.SHIPPED.read_text(encoding="utf-8") == process.sequential_bpmn(8)


def test_naive_engine_runs_the_benchmark_process_to_its_end_storing_spec_and_state(tmp_path):
    spec, subprocess_specs = baseline.parse([str(process.SHIPPED)], suites.SEQ)
    naive = baseline.NaiveEngine(baseline.sqlite_connection(str(tmp_path / "naive.db"), "NORMAL"), spec,
                                 subprocess_specs)
    timings = workload.run_naive(naive, 1, {}, lambda name, _f, _r: process.ANSWERS[
        process.step_form(int(name.split("_")[1]))])
    assert timings.completions == 8
    assert '"spec"' in naive.connection.execute("SELECT serialization FROM naive_workflows").fetchone()[0]


@pytest.fixture(scope="module")
def sqlite_result(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("bench")
    db = Database(f"sqlite:///{scratch / 'qproc.db'}")
    backend = suites.Backend("SQLite", db, baseline.sqlite_connection(str(scratch / "naive.db"), "NORMAL"))
    result = suites.measure_backend(backend, TINY, scratch)
    db.dispose()
    return result


def test_both_engines_complete_the_same_tasks_of_both_workloads(sqlite_result):
    assert [(t.completions, t.instances) for t in sqlite_result.sequential.ours] == [(8, 1)]
    assert [(t.completions, t.instances) for t in sqlite_result.sequential.naive] == [(8, 1)]
    assert sqlite_result.complaint.ours[0].completions == sqlite_result.complaint.naive[0].completions == 18


def test_report_shows_targets_and_the_backend_table(sqlite_result):
    text = render(Results(header=["header"], backends=[sqlite_result]))
    assert "## Targets" in text and "### SQLite" in text and "customer_complaint, 18 tasks" in text


def test_filler_stores_instances_each_with_one_open_task(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fill.db'}")
    filler = fill.Filler(workload.Driver.prepare(db, (8,), tmp_path))
    filler.fill_to(20)
    departments = ["sales", "quality", "engineering", "mgmt_rep"]
    assert len(db.run(lambda s: store.inbox(s, departments, ACTIVE_TASK))) == 20 + len(filler.templates)
    db.dispose()

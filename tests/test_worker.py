"""The worker: passes until stopped, logs what it did, stops cleanly on SIGTERM."""

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from conftest import ROOT, T0, deploy_fixture, postgresql_only
from engine import audit, runtime, worker
from engine.store import Database


def test_worker_fires_due_timers_and_logs_them_until_stopped(org_db, caplog):
    deploy_fixture(org_db, "boundary_timer")
    instance_id = org_db.run(lambda s: runtime.start(s, "boundary_timer", "mei.wang", T0).id)
    stop = threading.Event()
    moments = iter([T0 + timedelta(hours=1), T0 + timedelta(hours=5)])

    def clock():
        moment = next(moments, None)
        if moment is None:
            stop.set()
            return T0 + timedelta(hours=5)
        return moment

    with caplog.at_level(logging.INFO, logger="qproc.worker"):
        passes = worker.run(org_db, clock, stop, poll=0)
    assert passes == 3
    assert f"timer 'review_timeout' due {(T0 + timedelta(hours=4)).isoformat()} fired in instance {instance_id}" \
        in caplog.text
    assert "worker stopped after 3 passes" in caplog.text
    kinds = [e.kind for e in org_db.run(lambda s: audit.history(s, instance_id))]
    assert kinds.count("timer_fired") == 1


def test_worker_exits_cleanly_on_sigterm(org_db, tmp_path):
    env = {**os.environ, "QPROC_DB": org_db.url, "QPROC_NOW": T0.isoformat()}
    process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "worker", "--poll", "0.05"], env=env,
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if "worker started" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert "received SIGTERM: finishing the current transaction, then stopping" in rest
    assert "worker stopped after" in rest


class _Waits(threading.Event):
    """A stop event that records how long the worker waits and stops it after ``passes`` passes, never sleeping;
    ``between`` runs at each wait (what happens to the world between two passes)."""

    def __init__(self, passes: int, between=lambda: None):
        super().__init__()
        self.waits, self.passes, self.between = [], passes, between

    def wait(self, timeout=None):
        self.waits.append(timeout)
        self.between()
        if len(self.waits) == self.passes:
            self.set()
        return self.is_set()


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-folder/qproc.db",
                                 "postgresql+psycopg://postgres@127.0.0.1:1/test"], ids=["sqlite", "postgresql"])
def test_worker_waits_longer_after_each_pass_that_finds_no_database(url, caplog):
    stop = _Waits(passes=8)
    with caplog.at_level(logging.INFO, logger="qproc.worker"):
        assert worker.run(Database(url), lambda: T0, stop, poll=0.5) == 8
    assert stop.waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert caplog.text.count("is unavailable") == 8 and "Traceback" not in caplog.text


@postgresql_only
def test_worker_reconnects_after_the_server_dropped_its_connections(org_db, postgresql_server, caplog):
    deploy_fixture(org_db, "boundary_timer")
    instance_id = org_db.run(lambda s: runtime.start(s, "boundary_timer", "mei.wang", T0).id)
    application = org_db.engine.url.query["application_name"]

    def server_restart():
        with postgresql_server.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :a "
                              "AND pid <> pg_backend_pid()"), {"a": application})

    moments = iter([T0 + timedelta(hours=1), T0 + timedelta(hours=5)])
    with caplog.at_level(logging.INFO, logger="qproc.worker"):
        worker.run(org_db, lambda: next(moments), _Waits(passes=2, between=server_restart), poll=0)
    assert "unavailable" not in caplog.text and "failed" not in caplog.text
    assert [e.kind for e in org_db.run(lambda s: audit.history(s, instance_id))].count("timer_fired") == 1

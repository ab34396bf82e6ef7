"""The worker: passes until stopped, logs what it did, stops cleanly on SIGTERM."""

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

from conftest import ROOT, T0, deploy_fixture
from engine import audit, runtime, worker


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

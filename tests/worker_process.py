"""A worker in its own OS process, for the concurrency and fault tests: it completes quality tasks in a loop.

Run as ``python worker_process.py URL NUMBER [PAUSE_AT]``. The child prints one JSON line per thing it does:
``{"ready": NUMBER}`` once its database is open, then waits for a line on stdin so that every worker
starts at once; ``{"completed": TASK, "instance": ID, "revision": R, "events": N, "attempts": A}`` per
committed completion; ``{"refused": TASK, "error": ...}`` per refused one (done by someone else, or too many
collisions: it is tried again on the next pass); ``{"finished": NUMBER}`` when no task is left. With
PAUSE_AT it prints ``{"inside": TASK}`` in the middle of its PAUSE_AT-th completion, after the changes are
written to the database but before the commit, and blocks there until killed.

Each pass takes one open check: workers 0 and 1 work on the oldest instance with open checks, 2 and 3 on
the next, each pair on different checks of the same instance (worker k starts at check a, b, c, a …), and
on the same check when only one is left. It writes its number into the check's field, so the final data
shows who did each check.
"""

import json
import subprocess
import sys
from datetime import datetime, timezone

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
QUALITY = ["mei.wang", "lei.liu", "fang.yang", "qiang.li"]


def _emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main(url: str, number: int, pause_at: int | None) -> None:
    from engine import runtime, store
    from engine.errors import ConcurrentUpdate, InvalidTransition
    from engine.store import Database

    db = Database(url)
    actor = QUALITY[number % len(QUALITY)]
    db.run(lambda s: store.inbox(s, ["quality"], runtime.ACTIVE_TASK, limit=1))
    _emit(ready=number)
    sys.stdin.readline()
    done = 0
    while True:
        pending = db.run(lambda s: [(t.instance_id, t.name, t.id)
                                    for t in store.inbox(s, ["quality"], runtime.ACTIVE_TASK, limit=12)])
        if not pending:
            break
        instances = sorted({instance_id for instance_id, _, _ in pending})
        target = instances[min(number // 2, len(instances) - 1)]
        _, name, task_id = min((t for t in pending if t[0] == target),
                               key=lambda t: (ord(t[1][-1]) - ord("a") + number) % 3)
        attempts = 0

        def work(session):
            nonlocal attempts
            attempts += 1
            task = runtime.complete(session, task_id, actor, NOW, {name[-1]: number})
            if done + 1 == pause_at:
                session.flush()
                _emit(inside=task_id)
                sys.stdin.readline()  # the test kills this process here, mid-transaction
            return task.instance

        try:
            instance = db.run(work)
        except (InvalidTransition, ConcurrentUpdate) as err:
            _emit(refused=task_id, error=str(err))
            continue
        done += 1
        _emit(completed=task_id, instance=instance.id, revision=instance.revision, events=instance.last_seq,
              attempts=attempts)
    _emit(finished=number)


class Worker:
    """The test's side of one worker process: start it, read what it reports, let it go, kill it."""

    def __init__(self, url: str, number: int, pause_at: int | None = None):
        args = [sys.executable, __file__, url, str(number)] + ([str(pause_at)] if pause_at else [])
        self.number = number
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)

    def read(self) -> dict:
        """The next line the worker reports; fails with its error output if it died instead."""
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=60)
            raise AssertionError(f"worker {self.number} exited {self.process.returncode}: {self.process.stderr.read()}")
        return json.loads(line)

    def go(self) -> None:
        """Release the worker from its start line."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> list[dict]:
        """Everything the worker reports until it finishes; fails unless it exits cleanly."""
        reports = []
        while not reports or "finished" not in reports[-1]:
            reports.append(self.read())
        _, errors = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, errors
        return reports

    def kill(self) -> None:
        """kill -9: no exception handler, no rollback, no goodbye to the database."""
        self.process.kill()
        self.process.communicate(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)

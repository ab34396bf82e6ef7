"""Filling a database with many stored instances quickly, for the scaling rows.

Running 100,000 instances through the engine would take the benchmark longer than everything else
together, so the engine runs one template instance per stage of the sequential process (0 to 7 of
its 8 tasks done, so each is running with one open task, in the four departments in turn), and
their rows — instance, human tasks, history events — are copied in bulk under new ids. The copies
are what a busy database holds (same row sizes, same indexes, one open task each); their history
chains are not valid hash chains, which nothing in the benchmark reads.
"""

from datetime import timedelta

from engine import store

from . import process, workload

_CHUNK = 2000


class Filler:
    """Templates taken from the engine, copied into the database on demand."""

    def __init__(self, driver: "workload.Driver", steps: int = 8):
        self.db = driver.db
        self.templates = []
        clock = workload.T0
        for done in range(steps):
            clock += timedelta(minutes=1)
            instance_id, open_tasks = driver.start(process.process_key(steps), f"template-{done}", clock)
            for _ in range(done):
                task = open_tasks[0]
                open_tasks, _, _ = driver.complete(task, workload.sequential_answer(task.name, task.form_key, 0), clock)
            self.templates.append(self._rows(instance_id))
        self.added = 0

    def _rows(self, instance_id: int) -> tuple[dict, list[dict], list[dict]]:
        tables = (store.InstanceRow.__table__, store.TaskRow.__table__, store.EventRow.__table__)
        with self.db.engine.connect() as conn:
            instance = dict(conn.execute(tables[0].select().where(tables[0].c.id == instance_id)).mappings().one())
            tasks = [dict(r) for r in conn.execute(tables[1].select().where(tables[1].c.instance_id == instance_id))
                     .mappings()]
            events = [dict(r) for r in conn.execute(tables[2].select().where(tables[2].c.instance_id == instance_id))
                      .mappings()]
        for row in (instance, *tasks, *events):
            row.pop("id")
        return instance, tasks, events

    def fill_to(self, total: int) -> None:
        """Add copies until this filler has added ``total`` instances (each with one open task)."""
        instances, tasks, events = (store.InstanceRow.__table__, store.TaskRow.__table__, store.EventRow.__table__)
        while self.added < total:
            batch = range(self.added, min(total, self.added + _CHUNK))
            picks = [self.templates[n % len(self.templates)] for n in batch]
            rows = [{**pick[0], "business_key": f"fill-{n}"} for n, pick in zip(batch, picks)]
            with self.db.engine.begin() as conn:
                ids = conn.execute(instances.insert().returning(instances.c.id, sort_by_parameter_order=True),
                                   rows).scalars().all()
                conn.execute(tasks.insert(), [{**t, "instance_id": i} for i, pick in zip(ids, picks) for t in pick[1]])
                conn.execute(events.insert(), [{**e, "instance_id": i} for i, pick in zip(ids, picks) for e in pick[2]])
            self.added = batch.stop


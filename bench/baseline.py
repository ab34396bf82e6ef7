"""The naive engine the benchmark compares against, written the way the SpiffWorkflow docs suggest.

One table, one row per instance holding ``BpmnWorkflowSerializer.serialize_json(workflow)`` —
the whole workflow, spec included. Every task completion is one transaction: read the row,
deserialize, complete the task, run the engine, serialize the whole workflow again, write the row,
commit. No forms, no routing, no separate history: the task tree inside the blob is all it keeps.

:class:`InMemoryEngine` is the same engine with no storage at all, the reference for what
SpiffWorkflow itself costs.
"""

import sqlite3
import uuid
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


def parse(bpmn_files: list[str], process_key: str) -> tuple[Any, dict]:
    """The spec and called-process specs of ``process_key`` (parsed once, as any engine would)."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_files(bpmn_files)
    return parser.get_spec(process_key), parser.get_subprocess_specs(process_key)


def ready_user_tasks(workflow: BpmnWorkflow) -> list[tuple[str, str]]:
    """(id, BPMN id) of the workflow's READY user tasks, in the order Spiff lists them."""
    return [(str(t.id), t.task_spec.bpmn_id) for t in workflow.get_tasks(state=TaskState.READY, manual=True)]


def _complete(workflow: BpmnWorkflow, task_id: str, data: dict) -> None:
    task = workflow.get_task_from_id(uuid.UUID(task_id))
    if task is None or task.state != TaskState.READY or not task.task_spec.manual:
        raise ValueError(f"task {task_id} is not a READY user task")
    task.data.update(data)
    task.run()
    workflow.do_engine_steps()


class InMemoryEngine:
    """SpiffWorkflow with no persistence: workflows live in a dict."""

    def __init__(self, spec, subprocess_specs):
        self.spec, self.subprocess_specs = spec, subprocess_specs
        self.workflows: dict[int, BpmnWorkflow] = {}

    def start(self, data: dict) -> tuple[int, list[tuple[str, str]]]:
        """Create and run a workflow to its first wait; its id and ready user tasks."""
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs)
        workflow.task_tree.data.update(data)
        workflow.do_engine_steps()
        key = len(self.workflows) + 1
        self.workflows[key] = workflow
        return key, ready_user_tasks(workflow)

    def complete(self, instance_id: int, task_id: str, data: dict) -> list[tuple[str, str]]:
        """Complete a ready user task and run on; the ready user tasks after it."""
        workflow = self.workflows[instance_id]
        _complete(workflow, task_id, data)
        return ready_user_tasks(workflow)


class NaiveEngine:
    """SpiffWorkflow with the whole serialized workflow stored in one row per instance, one commit per task.

    ``connection`` is a DB-API connection in autocommit mode (sqlite3 with ``isolation_level=None``,
    or psycopg with ``autocommit=True`` for ``postgresql``); transactions are begun and committed explicitly.
    """

    def __init__(self, connection, spec, subprocess_specs, dialect: str = "sqlite"):
        self.connection, self.spec, self.subprocess_specs = connection, spec, subprocess_specs
        self.p = "?" if dialect == "sqlite" else "%s"
        id_column = "INTEGER PRIMARY KEY" if dialect == "sqlite" else "SERIAL PRIMARY KEY"
        self.connection.execute(f"CREATE TABLE IF NOT EXISTS naive_workflows "
                                f"(id {id_column}, serialization TEXT NOT NULL)")

    def _transaction(self, work):
        self.connection.execute("BEGIN")
        try:
            result = work()
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        return result

    def start(self, data: dict) -> tuple[int, list[tuple[str, str]]]:
        """Create a workflow, run it to its first wait and store it; its id and ready user tasks."""
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs)
        workflow.task_tree.data.update(data)
        workflow.do_engine_steps()

        def work():
            key = self.connection.execute(f"INSERT INTO naive_workflows (serialization) VALUES ({self.p}) RETURNING id",
                                          (SERIALIZER.serialize_json(workflow),)).fetchone()[0]
            return key, ready_user_tasks(workflow)
        return self._transaction(work)

    def complete(self, instance_id: int, task_id: str, data: dict) -> list[tuple[str, str]]:
        """Load the workflow, complete a ready user task, run on, store the whole workflow; the ready tasks after."""
        def work():
            row = self.connection.execute(f"SELECT serialization FROM naive_workflows WHERE id = {self.p}",
                                          (instance_id,)).fetchone()
            workflow = SERIALIZER.deserialize_json(row[0])
            _complete(workflow, task_id, data)
            self.connection.execute(f"UPDATE naive_workflows SET serialization = {self.p} WHERE id = {self.p}",
                                    (SERIALIZER.serialize_json(workflow), instance_id))
            return ready_user_tasks(workflow)
        return self._transaction(work)

    def state_bytes(self, instance_id: int) -> int:
        """Size of the instance's stored row (UTF-8 bytes of the serialization)."""
        row = self.connection.execute(f"SELECT serialization FROM naive_workflows WHERE id = {self.p}",
                                      (instance_id,)).fetchone()
        return len(row[0].encode("utf-8"))


def sqlite_connection(path: str, synchronous: str) -> sqlite3.Connection:
    """A sqlite3 connection set up as any careful naive engine would: WAL, the given synchronous mode."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection

"""In-process caches of decoded rows, so a command does not decode again what this process already holds.

Each cache lives in the database's memo (:func:`store.memo`), so two databases opened in one process
never share entries, and each entry is checked against what is stored before it is used: a cache can
make a command cheaper, never different, even with several processes writing the same database.

- Workflows: after a command that saved an instance's state commits, its workflow object is kept with
  the exact state text it was saved as. The next command on that instance takes it (the entry leaves
  the cache, so a command that fails after changing the workflow leaves nothing stale behind) if the
  stored state is still that text; any other writer's change makes the texts differ.
- Organisations: organisation rows are never changed (loading one inserts a new row), so one is
  decoded once per row id.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable

from SpiffWorkflow.bpmn import BpmnWorkflow

from . import store
from .directory import Organisation
from .store import InstanceRow, Session

WORKFLOWS_KEPT = 256  # per database; the least recently saved go first

_lock = threading.Lock()


class _Workflows:
    """Decoded workflows by instance id, each with the state text it was saved as."""

    def __init__(self):
        self.entries: OrderedDict[int, tuple[str, BpmnWorkflow]] = OrderedDict()

    def take(self, instance_id: int, state: str) -> BpmnWorkflow | None:
        with _lock:
            entry = self.entries.pop(instance_id, None)
        return entry[1] if entry is not None and entry[0] == state else None

    def put(self, instance_id: int, state: str, workflow: BpmnWorkflow) -> None:
        with _lock:
            self.entries[instance_id] = (state, workflow)
            self.entries.move_to_end(instance_id)
            while len(self.entries) > WORKFLOWS_KEPT:
                self.entries.popitem(last=False)


def _workflows(session: Session) -> _Workflows:
    memo = store.memo(session)
    found = memo.get("workflows")
    if found is None:
        with _lock:
            found = memo.setdefault("workflows", _Workflows())
    return found


def take_workflow(session: Session, instance: InstanceRow) -> BpmnWorkflow | None:
    """The decoded workflow of the instance as stored now, if this process kept it; the caller then owns it."""
    return _workflows(session).take(instance.id, instance.state)


def keep_workflow(session: Session, instance: InstanceRow, workflow: BpmnWorkflow) -> None:
    """Keep ``workflow`` as the decoded form of the state just set on ``instance``, once the command commits."""
    cache, instance_id, state = _workflows(session), instance.id, instance.state
    store.after_commit(session, lambda: cache.put(instance_id, state, workflow))


def organisation(session: Session, organisation_id: int, load: Callable[[], Organisation]) -> Organisation:
    """The Organisation stored under this id: ``load()`` the first time, then kept (the row never changes)."""
    memo = store.memo(session).setdefault("organisations", {})
    found = memo.get(organisation_id)
    if found is None:
        found = memo[organisation_id] = load()
    return found

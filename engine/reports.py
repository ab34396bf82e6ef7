"""Reports: read-only summaries of what the engine holds. Nothing here changes anything."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from . import deadlines, store
from .directory import Organisation
from .store import TaskRow


@dataclass(frozen=True)
class OverdueTask:
    """An open task past its due time: how late it is and who answers for it now."""

    task: TaskRow
    late: str
    owner: str


def overdue(session: Session, now: datetime, org: Organisation, statuses: tuple[str, ...]) -> list[OverdueTask]:
    """Every task in ``statuses`` (the active ones) whose due time has passed at ``now``, most overdue first."""
    return [OverdueTask(task=t, late=deadlines.late_by(t.due_at, now), owner=deadlines.owner(t, org))
            for t in store.overdue_tasks(session, now, statuses)]

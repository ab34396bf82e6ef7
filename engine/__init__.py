"""qproc's engine: the names the CLI (and later the web service) use, nothing more."""

from . import audit, corrections, demo, evidence, replay, reports, signatures, store, timers, worker
from .audit import history
from .corrections import correct
from .deadlines import late_by
from .directory import Organisation
from .errors import EngineError
from .runtime import (ACTIVE_TASK, SYSTEM_ACTOR, InstanceStatus, TaskStatus, business_calendar, cancel, claim,
                      complete, deploy, describe_task, instance_data, load_calendar, load_organisation, organisation,
                      rules_of, start, visible_departments)
from .store import Database

__all__ = [
    "ACTIVE_TASK", "SYSTEM_ACTOR", "Database", "EngineError", "InstanceStatus", "Organisation", "TaskStatus",
    "audit", "business_calendar", "cancel", "claim", "complete", "correct", "corrections", "demo", "deploy",
    "describe_task", "evidence", "history", "instance_data", "late_by", "load_calendar", "load_organisation",
    "organisation", "replay", "reports", "rules_of", "signatures", "start", "store", "timers",
    "visible_departments", "worker",
]

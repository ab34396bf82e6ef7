"""qproc's engine: the names the CLI and the web service use, nothing more."""

from . import (audit, bootstrap, corrections, credentials, definitions, demo, diff, evidence, migration, replay, reports,
               revisions, sample_history, signatures, store, timers, worker)
from .audit import history
from .corrections import correct
from .credentials import check_password, set_password
from .deadlines import late_by
from .directory import Organisation
from .errors import EngineError
from .runtime import (ACTIVE_TASK, SYSTEM_ACTOR, InstanceStatus, TaskStatus, business_calendar, cancel, claim,
                      complete, deploy, describe_task, instance_data, load_calendar, load_organisation, organisation,
                      rules_of, start, startable, unclaim, visible_departments, visible_instance)
from .store import Database

__all__ = [
    "ACTIVE_TASK", "SYSTEM_ACTOR", "Database", "EngineError", "InstanceStatus", "Organisation", "TaskStatus",
    "audit", "bootstrap", "business_calendar", "cancel", "check_password", "claim", "complete", "correct",
    "corrections", "credentials", "definitions", "demo", "deploy", "describe_task", "diff", "evidence", "history",
    "instance_data", "late_by", "load_calendar", "load_organisation", "migration", "organisation", "replay", "reports",
    "revisions", "rules_of", "sample_history",
    "set_password", "signatures", "start", "startable", "store", "timers", "unclaim", "visible_departments",
    "visible_instance", "worker",
]

"""qproc's engine: the names the CLI (and later the web service) use, nothing more."""

from . import audit, corrections, demo, evidence, replay, signatures, store
from .corrections import correct
from .audit import history
from .directory import Organisation
from .errors import EngineError
from .runtime import (ACTIVE_TASK, SYSTEM_ACTOR, InstanceStatus, TaskStatus, cancel, claim, complete, deploy,
                      describe_task, instance_data, load_organisation, organisation, rules_of, start,
                      visible_departments)
from .store import Database

__all__ = [
    "ACTIVE_TASK", "SYSTEM_ACTOR", "Database", "EngineError", "InstanceStatus", "Organisation", "TaskStatus",
    "audit", "cancel", "claim", "complete", "correct", "corrections", "demo", "deploy", "describe_task", "evidence",
    "history", "instance_data", "load_organisation", "organisation", "replay", "rules_of", "signatures", "start",
    "store", "visible_departments",
]

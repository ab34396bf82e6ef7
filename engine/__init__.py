"""qproc's engine: the names the CLI (and later the web service) use, nothing more."""

from . import demo, store
from .audit import history
from .directory import Organisation
from .errors import EngineError
from .runtime import (ACTIVE_TASK, SYSTEM_ACTOR, InstanceStatus, TaskStatus, cancel, claim, complete, deploy,
                      describe_task, instance_data, load_organisation, organisation, start, visible_departments)
from .store import Database

__all__ = [
    "ACTIVE_TASK", "SYSTEM_ACTOR", "Database", "EngineError", "InstanceStatus", "Organisation", "TaskStatus",
    "cancel", "claim", "complete", "demo", "deploy", "describe_task", "history", "instance_data",
    "load_organisation", "organisation", "start", "store", "visible_departments",
]
